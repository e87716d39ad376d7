//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and for the corpus property test
//! below that runs in every `cargo test`: each takes arbitrary bytes and must never panic, only
//! return errors. The inputs are what an instance reads from outside: the Metadata document
//! (Init + `ecs-bootstrap:` block), an Init file's `content` rendered with its `context`
//! (mustache) and, in a dry run, a local template.

use serde_json::Value;

use crate::config::settings::{self, Values};
use crate::template::{ResolveContext, Template};

/// Metadata as DescribeStackResource returns it, then the Init block, with and without
/// configSets asked for.
pub fn metadata_init(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = crate::boot::metadata::decode(Some(text), "fuzz/Resource.Metadata") else {
        return;
    };
    let _ = crate::init::parse(&v, &[], crate::input::Keys::Warn);
    let _ = crate::init::parse(
        &v,
        &["default".to_string(), "other".to_string()],
        crate::input::Keys::Strict,
    );
    crate::sys::redact::register_from_metadata(&v);
}

/// The `ecs-bootstrap:` block, as a real run and as a dry run read it.
pub fn settings(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let wrapped = serde_json::json!({ settings::BLOCK: v.clone() });
    for values in [Values::Real, Values::MayBePlaceholders] {
        let _ = settings::parse(&wrapped, values);
        let _ = settings::parse(&v, values);
    }
}

/// An Init file's `content` (or downloaded `source`) rendered with its `context`, as
/// `files.<path>.context` asks: the input is the mustache template, then optionally a NUL byte
/// and the context as JSON. Every template is also rendered with a fixed context that has
/// every kind of value (nested mappings, lists, numbers, HTML-special strings, empty and false
/// values), so sections, inverted sections and dotted names reach real data.
pub fn mustache_context(data: &[u8]) {
    let (template, own) = match data.iter().position(|&b| b == 0) {
        Some(i) => (
            &data[..i],
            crate::init::file_source::context(
                serde_json::from_slice::<Value>(&data[i + 1..])
                    .ok()
                    .as_ref(),
                "fuzz",
            )
            .ok()
            .flatten(),
        ),
        None => (data, None),
    };
    let fixed = serde_json::json!({
        "name": "<a href=\"x\">&'</a>",
        "port": 8080,
        "ratio": -1.5e300,
        "on": true,
        "off": false,
        "none": null,
        "empty": "",
        "list": ["x", 1, {"k": "v"}, [], null],
        "nested": {"a": {"b": {"c": "deep"}}, "list": [{"name": "inner"}]},
    });
    let path = "fuzz/Init.config.files./x.content";
    if let Some(ctx) = &own {
        let _ = crate::init::file_source::render(template, ctx, path);
    }
    let _ = crate::init::file_source::render(template, &fixed, path);
}

/// A local template: parse, then resolve every resource's Metadata.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(t) = Template::parse(&text, "fuzz.yml") else {
        return;
    };
    let ctx = ResolveContext::fake("fuzz-stack", "us-east-1");
    let _ = t.unknown_params(&ctx);
    for id in t.resource_ids() {
        let _ = t.resource_type(id);
        let _ = t.resource_metadata(id, &ctx);
    }
}

/// The resolver on its own, with something to expand: the input is a resource's Metadata
/// (YAML), resolved against a 64 KiB parameter, a list parameter and a mapping, so that every
/// intrinsic that copies values (`Ref`, `Fn::Sub`, `Fn::Join`, `Fn::FindInMap`, `Fn::Select`,
/// `Fn::Split`, YAML aliases) can fan out. The budgets must stop each such input with an error;
/// scripts/fuzz runs this target with a low `-rss_limit_mb`, so one that does not is found.
pub fn template_resolver(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let big = "x".repeat(64 << 10);
    let text = format!(
        "Parameters:\n  Big:\n    Type: String\n    Default: {big}\n  L:\n    Type: CommaDelimitedList\n    Default: a,b,c,d\nMappings:\n  M:\n    k:\n      v: {big}\nConditions:\n  Yes: !Equals [a, a]\nResources:\n  R:\n    Type: AWS::EC2::Instance\n    Metadata:\n      v:\n        {}\n",
        input.replace('\n', "\n        ")
    );
    let Ok(t) = Template::parse(&text, "fuzz.yml") else {
        return;
    };
    let mut ctx = ResolveContext::fake("fuzz-stack", "us-east-1");
    ctx.params.insert("L".into(), "p,q".into());
    let _ = t.resource_metadata("R", &ctx);
}

#[cfg(test)]
mod tests {
    //! The corpus seeds plus deterministic mutations of them, a few thousand inputs per target:
    //! not a replacement for `cargo fuzz run` (coverage-guided, hours), but every `cargo test`
    //! proves the seeds and their near neighbours do not panic.

    use std::path::Path;

    const ROUNDS_PER_SEED: usize = 500;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        seeds
    }

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Tokens that tend to reach deeper code than random bytes do.
    const DICT: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"true",
        b"0",
        b"-1",
        b"1e999",
        b"\"000644\"",
        b"\"120777\"",
        b"\"0999\"",
        b"!Ref ",
        b"!Sub ",
        b"!GetAtt ",
        b"Fn::If",
        b"Fn::Join",
        b"configSets",
        b"ConfigSet",
        b"commands",
        b"files",
        b"content",
        b"mode",
        b"\\u0000",
        b"\xff",
        b"\n  ",
        b"- ",
        b"&a ",
        b"*a",
        b"${",
        b"}",
        b"Cluster",
        b"Timeout",
        b"AgentConfig",
        b"Logs",
        b"Resources",
        b"Metadata",
        b"{{",
        b"}}",
        b"{{{",
        b"}}}",
        b"{{#",
        b"{{^",
        b"{{/",
        b"{{&",
        b"{{!",
        b"{{>",
        b"{{=<% %>=}}",
        b"nested.a.b",
        b"list",
        b"\0",
    ];

    fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(v.len() + 1);
            match rng.below(6) {
                0 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                1 => v.truncate(at),
                2 => {
                    let t = DICT[rng.below(DICT.len())];
                    v.splice(at..at, t.iter().copied());
                }
                3 if at < v.len() => {
                    let end = (at + 1 + rng.below(16)).min(v.len());
                    v.drain(at..end);
                }
                4 => {
                    let from = rng.below(other.len() + 1);
                    let to = (from + rng.below(64)).min(other.len());
                    v.splice(at..at, other[from..to].iter().copied());
                }
                _ => {
                    // Duplicate a slice: nesting and repeated keys.
                    let end = (at + rng.below(32)).min(v.len());
                    let piece = v[at..end].to_vec();
                    v.splice(at..at, piece);
                }
            }
        }
        v
    }

    fn check(target: &str, f: fn(&[u8])) {
        let seeds = corpus(target);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
        for seed in &seeds {
            f(seed);
            for _ in 0..ROUNDS_PER_SEED {
                let other = &seeds[rng.below(seeds.len())];
                let input = mutate(&mut rng, seed, other);
                let r = std::panic::catch_unwind(|| f(&input));
                assert!(
                    r.is_ok(),
                    "{target} panicked on input {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }

    #[test]
    fn metadata_init_never_panics() {
        check("metadata_init", super::metadata_init);
    }

    #[test]
    fn settings_never_panics() {
        check("settings", super::settings);
    }

    /// What the fuzzer found first in the `mustache` crate (since replaced by
    /// src/init/mustache.rs): it panicked when `{{x}}` named a boolean, list or mapping. Now
    /// they print as pystache (cfn-init's renderer) prints them.
    #[test]
    fn a_variable_naming_a_bool_list_or_mapping_renders_like_pystache() {
        let ctx = serde_json::json!({
            "on": true,
            "list": ["a", 1],
            "map": {"k": "v"},
            "name": "ok",
        });
        let path = "I.config.files./etc/app.conf.content";
        for (tag, want) in [
            ("{{on}}", "True"),
            ("{{{list}}}", "['a', 1]"),
            ("{{& map}}", "{'k': 'v'}"),
        ] {
            let out = crate::init::file_source::render(tag.as_bytes(), &ctx, path).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "{tag}");
        }
        let out = crate::init::file_source::render(
            b"{{#on}}y{{/on}}{{#list}}{{.}}{{/list}}{{#map}}{{k}}{{/map}} {{name}}",
            &ctx,
            path,
        )
        .unwrap();
        assert_eq!(out, b"ya1v ok");
    }

    #[test]
    fn mustache_context_never_panics() {
        check("mustache_context", super::mustache_context);
    }

    #[test]
    fn template_resolver_never_panics() {
        check("template_resolver", super::template_resolver);
    }

    #[test]
    fn template_never_panics() {
        check("template", super::template);
    }
}
