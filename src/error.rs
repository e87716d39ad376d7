//! Typed errors for the whole boot sequence, and the one place that turns them into an exit code
//! and into the reason a FAILURE is logged with.
//!
//! Exit codes are an interface (UserData scripts and the systemd unit look at them); every one
//! the process exits with comes from [`code`], chosen by [`Error::exit_code`] and
//! [`Failure::exit_code`]:
//!
//! | code | meaning | errors |
//! |------|---------|--------|
//! | 0 | success: SUCCESS signalled (or not waiting, or signalled earlier), `--no-signal` run joined, SKIPPED, CONFIGURED (handed off); `--help` | - |
//! | 1 | could not set up: the async runtime or an HTTP client (the environment, not the input); `hup`: its configuration (cfn-hup exits 1 on a bad one, bin/cfn-hup:74-82,98-100,218-221@25fabe91) | [`Error::Setup`], [`Error::HupConfig`] |
//! | 2 | the fix is on the command line: usage, discovery failed (pass the flags it names), `--after-handoff` with nothing handed off | [`Error::Usage`], [`Error::Discovery`], [`Error::NothingHandedOff`], clap's refusals |
//! | 3 | bad input: the metadata, the `ecs-bootstrap:` block, a template | [`Error::Invalid`], [`Error::Template`] |
//! | 4 | Init failed: a file (I/O) or a command; `hup`: its state file | [`Error::Io`], [`Error::Command`], [`Error::Tool`], [`Error::HupState`] |
//! | 5 | a service failed: `systemctl`, a failed unit, `systemd-run` | [`Error::Systemctl`], [`Error::UnitFailed`] |
//! | 6 | the cluster join failed | [`Error::JoinTimeout`], [`Error::WrongCluster`], [`Error::NotHealthy`], [`Error::ClusterNotActive`], [`Error::AgentTerminal`] |
//! | 7 | IMDS or an AWS API, or no usable root CA certificates | [`Error::Imds`], [`Error::Aws`], [`Error::NoCaCertificates`] |
//! | 8 | the signal could not be delivered (any error but a usage error, at [`Step::Signal`]) | - |
//! | 9 | the run's deadline or a phase's budget ran out | [`Error::DeadlineExceeded`] |

use std::path::PathBuf;
use std::process::ExitCode;

use crate::template::TemplateError;

/// The steps of the boot sequence, in order. A failure is always reported with the step it
/// happened in, so the operator reading the console output knows where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Identity,
    Discovery,
    Metadata,
    Settings,
    Init,
    AgentConfig,
    LogsConfig,
    HandOff,
    /// ecs:DescribeClusters before the services start (src/join/cluster.rs).
    Cluster,
    Services,
    Join,
    Signal,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Identity => "instance identity (IMDS)",
            Step::Discovery => "stack discovery",
            Step::Metadata => "stack metadata",
            Step::Settings => "ecs-bootstrap settings",
            Step::Init => "AWS::CloudFormation::Init",
            Step::AgentConfig => "ECS agent config",
            Step::LogsConfig => "CloudWatch agent config",
            Step::Cluster => "ECS cluster check",
            Step::Services => "services",
            Step::HandOff => "hand-off from UserData to a systemd unit",
            Step::Join => "cluster join",
            Step::Signal => "CloudFormation signal",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The exit codes, by meaning (the table above).
pub mod code {
    pub const SUCCESS: u8 = 0;
    pub const SETUP: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BAD_INPUT: u8 = 3;
    pub const INIT: u8 = 4;
    pub const SERVICE: u8 = 5;
    pub const JOIN: u8 = 6;
    pub const AWS: u8 = 7;
    pub const SIGNAL: u8 = 8;
    pub const DEADLINE: u8 = 9;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("command line: {0}")]
    Usage(String),

    /// What every run needs could not be made: the async runtime, an HTTP client (its TLS
    /// backend). Nothing in the input can cause or fix it.
    #[error("cannot start {what}: {message}")]
    Setup { what: &'static str, message: String },

    /// `--after-handoff` (the hand-off unit's command line) with no hand-off file: nothing to
    /// resume (src/boot/handoff.rs). Run without the flag.
    #[error("{}: nothing was handed off ({} does not exist); run without {}", crate::boot::handoff::RESUME_FLAG, path.display(), crate::boot::handoff::RESUME_FLAG)]
    NothingHandedOff { path: PathBuf },

    /// Zero-config could not find the stack or a resource; the message names the flags to pass.
    #[error("{message}")]
    Discovery { message: String },

    /// `ecs-bootstrap hup`: cfn-hup.conf or the hooks cannot be used (cfn-hup's messages).
    #[error("{0}")]
    HupConfig(String),

    /// `ecs-bootstrap hup`: its state file cannot be read or written.
    #[error("hup state: {0}")]
    HupState(String),

    #[error("IMDS {path}: {message}")]
    Imds { path: String, message: String },

    /// The system has no usable root CA certificate, so no HTTPS call to AWS can succeed.
    #[error("no usable root CA certificates ({detail}); CloudFormation and ECS are HTTPS-only: install the ca-certificates package or point SSL_CERT_FILE at a PEM bundle")]
    NoCaCertificates { detail: String },

    #[error("{api} failed: {message}{}", crate::aws::iam_hint(api, message))]
    Aws { api: &'static str, message: String },

    /// A phase was still waiting when its budget or the run's deadline ran out.
    #[error("gave up after {waited_secs}s still waiting for {waiting_for} ({})", deadline_detail(*run_deadline_secs, *phase_budget_secs))]
    DeadlineExceeded {
        waiting_for: String,
        waited_secs: u64,
        run_deadline_secs: u64,
        phase_budget_secs: Option<u64>,
    },

    /// Bad input: a key path in the metadata, the settings block or the template, and what is
    /// wrong with it.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },

    #[error(transparent)]
    Template(#[from] TemplateError),

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("config '{config}' command '{key}' {outcome}{}", tail_suffix(.output_tail))]
    Command {
        config: String,
        key: String,
        outcome: String,
        output_tail: String,
    },

    /// An external tool run by the Init engine (package manager, account or service tool).
    #[error("config '{config}' {section}: `{command}` {outcome}{}", tail_suffix(.output_tail))]
    Tool {
        config: String,
        section: &'static str,
        command: String,
        outcome: String,
        output_tail: String,
    },

    #[error("`{command}` {outcome}")]
    Systemctl { command: String, outcome: String },

    #[error("{unit} failed{}", detail_suffix(.detail))]
    UnitFailed { unit: String, detail: String },

    #[error("timed out after {seconds}s waiting for the ECS agent to register in cluster '{cluster}' ({last})")]
    JoinTimeout {
        seconds: u64,
        cluster: String,
        last: String,
    },

    #[error("the ECS agent registered in cluster '{actual}', expected '{expected}' (check ECS_CLUSTER in ecs.config and /var/lib/ecs/ecs.config)")]
    WrongCluster { expected: String, actual: String },

    #[error("container instance {arn} is not healthy in ECS: {detail}")]
    NotHealthy { arn: String, detail: String },

    /// ecs:DescribeClusters, before the services start: the agent could never register.
    #[error("the ECS cluster '{cluster}' {} in region {region} (ecs:DescribeClusters): the agent cannot register into it; create the cluster, or fix the ecs-bootstrap block's `Cluster` (ECS_CLUSTER) or the region", cluster_state(.status))]
    ClusterNotActive {
        cluster: String,
        region: String,
        /// The cluster's status (`INACTIVE`: deleted), or `None` when ECS does not know it.
        status: Option<String>,
    },

    /// The agent logged a terminal error (src/join/agent_log.rs). `exit` is the agent's exit
    /// code as ecs-init logged it (`Agent exited with code N`), when it did.
    #[error("the ECS agent stopped on a terminal error{}: {line}{}", exit_suffix(*.exit), hint_suffix(.hint))]
    AgentTerminal {
        line: String,
        exit: Option<i32>,
        hint: String,
    },
}

fn cluster_state(status: &Option<String>) -> String {
    match status {
        None => "does not exist".to_string(),
        Some(s) => format!("is {s} (not ACTIVE)"),
    }
}

fn exit_suffix(exit: Option<i32>) -> String {
    match exit {
        Some(code) => format!(" (exit code {code}, from ecs-init.log)"),
        None => " (ecs-init had not logged its exit code yet)".to_string(),
    }
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; last output: {}", tail.trim())
    }
}

fn deadline_detail(run: u64, phase: Option<u64>) -> String {
    match phase {
        Some(p) => format!("its budget of {p}s ran out; run deadline {run}s, --deadline"),
        None => format!("the run deadline of {run}s was near; raise it with --deadline"),
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn setup(what: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Setup {
            what,
            message: e.to_string(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Exit codes are part of the interface (UserData scripts and the systemd unit look at them),
    /// so they are decided here and nowhere else (the table in the module's documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            // cfn-hup exits 1 on a configuration it cannot use (bin/cfn-hup:74-82@25fabe91).
            Error::Setup { .. } | Error::HupConfig(_) => code::SETUP,
            // The fix for a failed discovery, or for resuming nothing, is on the command line,
            // as for a usage error.
            Error::Usage(_) | Error::Discovery { .. } | Error::NothingHandedOff { .. } => {
                code::USAGE
            }
            Error::Invalid { .. } | Error::Template(_) => code::BAD_INPUT,
            Error::Io { .. } | Error::Command { .. } | Error::Tool { .. } | Error::HupState(_) => {
                code::INIT
            }
            Error::Systemctl { .. } | Error::UnitFailed { .. } => code::SERVICE,
            Error::JoinTimeout { .. }
            | Error::WrongCluster { .. }
            | Error::NotHealthy { .. }
            | Error::ClusterNotActive { .. }
            | Error::AgentTerminal { .. } => code::JOIN,
            Error::Imds { .. } | Error::Aws { .. } | Error::NoCaCertificates { .. } => code::AWS,
            Error::DeadlineExceeded { .. } => code::DEADLINE,
        }
    }

    /// An error before any step (the command line, the runtime): `ecs-bootstrap: <error>` on
    /// stderr, and the exit.
    pub fn exit(&self) -> ExitCode {
        eprintln!("ecs-bootstrap: {self}");
        ExitCode::from(self.exit_code())
    }
}

/// A command line the parser refused (its usage message, exit 2) or answered (`--help`,
/// `--version` on stdout, exit 0); printed by clap as its own `exit()` does.
pub fn command_line_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(command_line_code(e))
}

fn command_line_code(e: &clap::Error) -> u8 {
    if e.use_stderr() {
        code::USAGE
    } else {
        code::SUCCESS
    }
}

/// A failed run: the step it failed in and why. Its Display is the reason logged with FAILURE.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {error}")]
pub struct Failure {
    pub step: Step,
    #[source]
    pub error: Box<Error>,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        // A signal that could not be delivered is its own case: the instance may be healthy, but
        // CloudFormation was not told, and the operator must know that.
        if self.step == Step::Signal && !matches!(*self.error, Error::Usage(_)) {
            code::SIGNAL
        } else {
            self.error.exit_code()
        }
    }

    /// The one line an operator reads in the console output of a broken instance, redacted.
    /// `what` says which command failed (` (init)`, ` (dry run)`), empty for a run.
    pub fn line(&self, what: &str) -> String {
        crate::sys::redact::text(&format!("ecs-bootstrap: FAILURE{what} at {self}"))
    }

    /// Prints [`Failure::line`] on stderr and gives the exit.
    pub fn exit(&self, what: &str) -> ExitCode {
        eprintln!("{}", self.line(what));
        ExitCode::from(self.exit_code())
    }
}

/// Tags a result with the step it belongs to.
pub trait AtStep<T> {
    fn at(self, step: Step) -> Result<T, Failure>;
}

impl<T, E: Into<Error>> AtStep<T> for Result<T, E> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            error: Box::new(e.into()),
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::PermissionDenied)
    }

    /// One of every variant with its exit code and its reason text. The match below has no
    /// wildcard: a new variant does not compile until it is added here.
    fn every_variant() -> Vec<(Error, u8, &'static str)> {
        let cases = vec![
            (Error::Usage("bad flag".into()), 2, "command line: bad flag"),
            (
                Error::HupConfig("No valid hooks found".into()),
                1,
                "No valid hooks found",
            ),
            (
                Error::HupState("/x: denied".into()),
                4,
                "hup state: /x: denied",
            ),
            (
                Error::setup("an HTTP client", "no TLS backend"),
                1,
                "cannot start an HTTP client: no TLS backend",
            ),
            (
                Error::NothingHandedOff {
                    path: "/r/var/lib/ecs-bootstrap/handoff.json".into(),
                },
                2,
                "--after-handoff: nothing was handed off (/r/var/lib/ecs-bootstrap/handoff.json does not exist); run without --after-handoff",
            ),
            (
                Error::Discovery {
                    message: "pass --stack".into(),
                },
                2,
                "pass --stack",
            ),
            (
                Error::Imds {
                    path: "/latest/x".into(),
                    message: "timed out".into(),
                },
                7,
                "IMDS /latest/x: timed out",
            ),
            (
                Error::NoCaCertificates {
                    detail: "none".into(),
                },
                7,
                "no usable root CA certificates (none); CloudFormation and ECS are HTTPS-only: install the ca-certificates package or point SSL_CERT_FILE at a PEM bundle",
            ),
            (
                Error::Aws {
                    api: "ecs:DescribeClusters",
                    message: "throttled".into(),
                },
                7,
                "ecs:DescribeClusters failed: throttled",
            ),
            (
                Error::DeadlineExceeded {
                    waiting_for: "x".into(),
                    waited_secs: 5,
                    run_deadline_secs: 840,
                    phase_budget_secs: None,
                },
                9,
                "gave up after 5s still waiting for x (the run deadline of 840s was near; raise it with --deadline)",
            ),
            (Error::invalid("a.b", "not a string"), 3, "a.b: not a string"),
            (
                Error::Template(TemplateError::Syntax {
                    file: "t.yml".into(),
                    line: None,
                    column: None,
                    message: "bad".into(),
                }),
                3,
                "t.yml: bad",
            ),
            (
                Error::io("read", "/etc/x", io()),
                4,
                "read /etc/x: permission denied",
            ),
            (
                Error::Command {
                    config: "c".into(),
                    key: "k".into(),
                    outcome: "exited 1".into(),
                    output_tail: "oops\n".into(),
                },
                4,
                "config 'c' command 'k' exited 1; last output: oops",
            ),
            (
                Error::Tool {
                    config: "c".into(),
                    section: "packages",
                    command: "dnf install x".into(),
                    outcome: "exited 1".into(),
                    output_tail: String::new(),
                },
                4,
                "config 'c' packages: `dnf install x` exited 1",
            ),
            (
                Error::Systemctl {
                    command: "systemctl start ecs".into(),
                    outcome: "exited 1".into(),
                },
                5,
                "`systemctl start ecs` exited 1",
            ),
            (
                Error::UnitFailed {
                    unit: "ecs.service".into(),
                    detail: String::new(),
                },
                5,
                "ecs.service failed",
            ),
            (
                Error::JoinTimeout {
                    seconds: 60,
                    cluster: "c".into(),
                    last: "no answer".into(),
                },
                6,
                "timed out after 60s waiting for the ECS agent to register in cluster 'c' (no answer)",
            ),
            (
                Error::WrongCluster {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                6,
                "the ECS agent registered in cluster 'b', expected 'a' (check ECS_CLUSTER in ecs.config and /var/lib/ecs/ecs.config)",
            ),
            (
                Error::NotHealthy {
                    arn: "arn".into(),
                    detail: "DRAINING".into(),
                },
                6,
                "container instance arn is not healthy in ECS: DRAINING",
            ),
            (
                Error::ClusterNotActive {
                    cluster: "c".into(),
                    region: "eu-west-1".into(),
                    status: None,
                },
                6,
                "the ECS cluster 'c' does not exist in region eu-west-1 (ecs:DescribeClusters): the agent cannot register into it; create the cluster, or fix the ecs-bootstrap block's `Cluster` (ECS_CLUSTER) or the region",
            ),
            (
                Error::AgentTerminal {
                    line: "level=error".into(),
                    exit: Some(1),
                    hint: String::new(),
                },
                6,
                "the ECS agent stopped on a terminal error (exit code 1, from ecs-init.log): level=error",
            ),
        ];
        for (e, _, _) in &cases {
            match e {
                Error::Usage(_)
                | Error::Setup { .. }
                | Error::HupConfig(_)
                | Error::HupState(_)
                | Error::NothingHandedOff { .. }
                | Error::Discovery { .. }
                | Error::Imds { .. }
                | Error::NoCaCertificates { .. }
                | Error::Aws { .. }
                | Error::DeadlineExceeded { .. }
                | Error::Invalid { .. }
                | Error::Template(_)
                | Error::Io { .. }
                | Error::Command { .. }
                | Error::Tool { .. }
                | Error::Systemctl { .. }
                | Error::UnitFailed { .. }
                | Error::JoinTimeout { .. }
                | Error::WrongCluster { .. }
                | Error::NotHealthy { .. }
                | Error::ClusterNotActive { .. }
                | Error::AgentTerminal { .. } => {}
            }
        }
        cases
    }

    #[test]
    fn every_variant_has_its_documented_exit_code_and_reason() {
        let cases = every_variant();
        assert_eq!(cases.len(), 22, "one case per variant");
        for (e, code, text) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
            assert_eq!(e.to_string(), text, "{e:?}");
        }
    }

    #[test]
    fn codes_are_the_documented_table() {
        // The README's and the module documentation's table; a change here is an interface
        // change.
        assert_eq!(
            [
                code::SUCCESS,
                code::SETUP,
                code::USAGE,
                code::BAD_INPUT,
                code::INIT,
                code::SERVICE,
                code::JOIN,
                code::AWS,
                code::SIGNAL,
                code::DEADLINE
            ],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        );
    }

    fn at(step: Step, error: Error) -> Failure {
        Failure {
            step,
            error: Box::new(error),
        }
    }

    #[test]
    fn a_failure_at_the_signal_is_exit_8_unless_it_is_a_usage_error() {
        for (e, _, _) in every_variant() {
            let usage = matches!(e, Error::Usage(_));
            let f = at(Step::Signal, e);
            assert_eq!(f.exit_code(), if usage { 2 } else { 8 }, "{f:?}");
        }
        for (e, code, _) in every_variant() {
            assert_eq!(at(Step::Join, e).exit_code(), code);
        }
    }

    #[test]
    fn the_failure_line_names_the_command_and_the_step_and_is_redacted() {
        let f = at(Step::Join, Error::invalid("k", "v"));
        assert_eq!(f.to_string(), "cluster join: k: v");
        assert_eq!(f.line(""), "ecs-bootstrap: FAILURE at cluster join: k: v");
        assert_eq!(
            f.line(" (init)"),
            "ecs-bootstrap: FAILURE (init) at cluster join: k: v"
        );
        let secret = "s3cr3t-failure-line";
        crate::sys::redact::register(secret);
        let f = at(Step::Init, Error::invalid("k", format!("bad {secret}")));
        let line = f.line("");
        assert!(!line.contains(secret), "{line}");
        assert!(line.contains(crate::sys::redact::REDACTED), "{line}");
    }

    #[test]
    fn the_command_line_parser_exits_2_on_a_refusal_and_0_on_help() {
        use clap::Parser;
        let refused = crate::cli::Cli::try_parse_from(["ecs-bootstrap", "--no-such-flag"])
            .expect_err("refused");
        assert_eq!(command_line_code(&refused), 2);
        for answered in ["--help", "--version"] {
            let e =
                crate::cli::Cli::try_parse_from(["ecs-bootstrap", answered]).expect_err("answered");
            assert_eq!(command_line_code(&e), 0, "{answered}");
        }
    }
}
