//! What each command does once its command line is parsed: logging, the runtime, the work, and
//! the exit (its code from [`crate::error`]). src/main.rs only parses and dispatches here.

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::boot::{self, handoff};
use crate::cli::dropin::{argv0, get_metadata, signal_cmd};
use crate::cli::{init::InitArgs, logging, Cli, Mode, Output, RunArgs};
use crate::error::{code, command_line_exit, Error, Failure, Step};

/// The command line, with the cfn-* names (a symlink `cfn-signal` is `ecs-bootstrap signal`);
/// a refused one is printed, and its exit returned.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, ExitCode> {
    let argv =
        argv0::rewrite(argv, |sub| Cli::command().find_subcommand(sub).is_some()).map_err(|m| {
            // Printed without the "command line:" of Error::Usage, as it always was.
            eprintln!("ecs-bootstrap: {m}");
            ExitCode::from(Error::Usage(m).exit_code())
        })?;
    Cli::try_parse_from(argv).map_err(|e| command_line_exit(&e))
}

/// The boot sequence (`run`, the default) or its dry run.
pub fn boot(args: RunArgs) -> ExitCode {
    crate::init::mustache::set_flavour(args.mustache);
    logging::init(args.verbose);
    let foreground = args.foreground || args.dry_run;
    let mode = match args.into_mode() {
        Ok(m) => m,
        Err(e) => return e.exit(),
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e.exit(),
    };
    match mode {
        Mode::DryRun(opts, output) => match runtime.block_on(boot::dry_run(&opts)) {
            Ok(plan) => {
                print!(
                    "{}",
                    match output {
                        Output::Text => plan.to_text(),
                        Output::Json => plan.to_json(),
                    }
                );
                ExitCode::from(code::SUCCESS)
            }
            Err(f) => f.exit(" (dry run)"),
        },
        Mode::Run(opts) => {
            let outcome = if opts.after_handoff {
                runtime.block_on(boot::resume(&opts))
            } else {
                let then = if !foreground && handoff::under_cloud_final() {
                    boot::Then::HandOff {
                        args: std::env::args_os().skip(1).collect(),
                    }
                } else {
                    boot::Then::Join
                };
                runtime.block_on(boot::run(&opts, then))
            };
            match outcome {
                Ok(o) => {
                    eprintln!("ecs-bootstrap: {}", o.console_line());
                    ExitCode::from(code::SUCCESS)
                }
                Err(f) => f.exit(""),
            }
        }
    }
}

/// `ecs-bootstrap init`: silent on success, as cfn-init; one FAILURE line otherwise.
pub fn init(a: &InitArgs) -> ExitCode {
    crate::init::mustache::set_flavour(a.mustache);
    logging::init(a.verbose);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e.exit(),
    };
    match runtime.block_on(crate::cli::init::run(a)) {
        Ok(()) => ExitCode::from(code::SUCCESS),
        Err(f) => f.exit(" (init)"),
    }
}

/// `ecs-bootstrap signal` (cfn-signal).
pub fn signal(a: &signal_cmd::SignalArgs) -> ExitCode {
    dropin(a.verbose, Step::Signal, signal_cmd::run(a), |_| ())
}

/// `ecs-bootstrap get-metadata` (cfn-get-metadata): the Metadata on stdout.
pub fn get_metadata(a: &get_metadata::GetMetadataArgs) -> ExitCode {
    dropin(a.verbose, Step::Metadata, get_metadata::run(a), |text| {
        print!("{text}")
    })
}

/// `ecs-bootstrap hup` (cfn-hup): a configuration error is one line and exit 1, as cfn-hup's.
pub fn hup(a: &crate::cli::hup::HupArgs) -> ExitCode {
    let opts = a.options();
    let (mode, verbose) = match crate::hup::daemon::mode(&opts) {
        Ok(m) => m,
        Err(e) => return e.exit(),
    };
    logging::init(if verbose { a.verbose.max(1) } else { 0 });
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e.exit(),
    };
    match runtime.block_on(crate::hup::daemon::run(
        &opts,
        mode,
        &crate::sys::process::REAL,
    )) {
        Ok(()) => ExitCode::from(code::SUCCESS),
        Err(e) => e.exit(),
    }
}

/// A drop-in command: its work, `done` with the result, a FAILURE line at `step` otherwise.
fn dropin<T>(
    verbose: u8,
    step: Step,
    work: impl Future<Output = Result<T, Error>>,
    done: impl FnOnce(T),
) -> ExitCode {
    logging::init(verbose);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e.exit(),
    };
    match runtime.block_on(work) {
        Ok(v) => {
            done(v);
            ExitCode::from(code::SUCCESS)
        }
        Err(e) => Failure {
            step,
            error: Box::new(e),
        }
        .exit(""),
    }
}

/// One current-thread runtime: every entry point is a short sequence of awaits.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::setup("the async runtime", e))
}
