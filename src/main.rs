use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ecs_bootstrap::cli::dropin::{argv0, get_metadata, signal_cmd};
use ecs_bootstrap::cli::{Cli, Command, Mode, Output};
use ecs_bootstrap::error::{Failure, Step};
use ecs_bootstrap::{boot, boot::handoff};

fn main() -> ExitCode {
    // Installed as `cfn-signal` etc. (a symlink), the binary is that command.
    let argv = match argv0::rewrite(std::env::args_os().collect(), |sub| {
        Cli::command().find_subcommand(sub).is_some()
    }) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("ecs-bootstrap: {m}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    if let Some(Command::Init(a)) = &cli.command {
        return init_main(a);
    }
    if let Some(code) = run_dropin(&cli) {
        return code;
    }
    let args = cli.into_args();
    ecs_bootstrap::init::mustache::set_flavour(args.mustache);
    ecs_bootstrap::init::set_strict(args.strict);
    init_logging(args.verbose);
    let foreground = args.foreground || args.dry_run;
    let mode = match args.into_mode() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ecs-bootstrap: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match mode {
        Mode::DryRun(opts, output) => match runtime.block_on(boot::dry_run(&opts)) {
            Ok(plan) => {
                let text = match output {
                    Output::Text => plan.to_text(),
                    Output::Json => plan.to_json(),
                };
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(f) => fail(&f, " (dry run)"),
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
                Ok(s) => {
                    eprintln!("ecs-bootstrap: {}", s.console_line());
                    ExitCode::SUCCESS
                }
                Err(f) => fail(&f, ""),
            }
        }
    }
}

/// One current-thread runtime: every entry point is a short sequence of awaits.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("ecs-bootstrap: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}

/// `ecs-bootstrap init`: silent on success, as cfn-init; one FAILURE line otherwise.
fn init_main(a: &ecs_bootstrap::cli::init::InitArgs) -> ExitCode {
    ecs_bootstrap::init::mustache::set_flavour(a.mustache);
    ecs_bootstrap::init::set_strict(a.strict);
    init_logging(a.verbose);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(ecs_bootstrap::cli::init::run(a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(&f, " (init)"),
    }
}

/// `signal` and `get-metadata`; None for the boot sequence.
fn run_dropin(cli: &Cli) -> Option<ExitCode> {
    let (verbose, step) = match &cli.command {
        Some(Command::Signal(a)) => (a.verbose, Step::Signal),
        Some(Command::GetMetadata(a)) => (a.verbose, Step::Metadata),
        _ => return None,
    };
    init_logging(verbose);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return Some(code),
    };
    let result = match &cli.command {
        Some(Command::Signal(a)) => runtime.block_on(signal_cmd::run(a)).map(|_| ()),
        Some(Command::GetMetadata(a)) => runtime
            .block_on(get_metadata::run(a))
            .map(|text| print!("{text}")),
        _ => return None,
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(
            &Failure {
                step,
                error: Box::new(e),
            },
            "",
        ),
    })
}

/// The one line an operator reads in the console output of a broken instance.
fn fail(f: &Failure, what: &str) -> ExitCode {
    let line = format!("ecs-bootstrap: FAILURE{what} at {f}");
    eprintln!("{}", ecs_bootstrap::sys::redact::text(&line));
    ExitCode::from(f.exit_code())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ECS_BOOTSTRAP_LOG").unwrap_or_else(|_| {
        // The SDK's own debug output is noise at -v; at -vv it is wanted.
        let sdk = if verbose >= 2 { "debug" } else { "warn" };
        tracing_subscriber::EnvFilter::new(format!(
            "{default},aws_config={sdk},aws_smithy_runtime={sdk},aws_sdk_cloudformation={sdk},aws_sdk_ecs={sdk},hyper={sdk},reqwest={sdk}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(ecs_bootstrap::sys::redact::without_wire_bodies(filter))
        .with_writer(ecs_bootstrap::sys::redact::stderr)
        // No colours: the writer escapes every control character (ESC included) so that a
        // template value cannot rewrite or conceal a log line (issue 8), and the formatter's
        // own colour sequences would be escaped with them.
        .with_ansi(false)
        .with_target(false)
        .init();
}
