//! The command line, parsed and dispatched; everything else is in the library (src/cli/entry.rs).

use std::process::ExitCode;

use ecs_bootstrap::cli::{entry, Command};

fn main() -> ExitCode {
    let cli = match entry::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    match cli.command {
        Some(Command::Init(a)) => entry::init(&a),
        Some(Command::Signal(a)) => entry::signal(&a),
        Some(Command::GetMetadata(a)) => entry::get_metadata(&a),
        Some(Command::Hup(a)) => entry::hup(&a),
        Some(Command::Run(_)) | None => entry::boot(cli.into_args()),
    }
}
