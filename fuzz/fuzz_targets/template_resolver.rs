#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ecs_bootstrap::fuzzing::template_resolver(data));
