//! Typed errors for the whole boot sequence, and the one place that turns them into an exit code
//! and into the reason a FAILURE is logged with.

use std::path::PathBuf;

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("command line: {0}")]
    Usage(String),

    /// Zero-config could not find the stack or a resource; the message names the flags to pass.
    #[error("{message}")]
    Discovery { message: String },

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

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Exit codes are part of the interface (UserData scripts and the systemd unit look at them),
    /// so they are decided here and nowhere else.
    pub fn exit_code(&self) -> u8 {
        match self {
            // The fix for a failed discovery is on the command line, as for a usage error.
            Error::Usage(_) | Error::Discovery { .. } => 2,
            Error::Invalid { .. } | Error::Template(_) => 3,
            Error::Io { .. } | Error::Command { .. } | Error::Tool { .. } => 4,
            Error::Systemctl { .. } | Error::UnitFailed { .. } => 5,
            Error::JoinTimeout { .. }
            | Error::WrongCluster { .. }
            | Error::NotHealthy { .. }
            | Error::ClusterNotActive { .. }
            | Error::AgentTerminal { .. } => 6,
            Error::Imds { .. } | Error::Aws { .. } | Error::NoCaCertificates { .. } => 7,
            Error::DeadlineExceeded { .. } => 9,
        }
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
            8
        } else {
            self.error.exit_code()
        }
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
