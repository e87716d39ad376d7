//! The command line. Names are an interface: UserData scripts and other tooling depend on them.

pub mod dropin;
pub mod entry;
pub mod hup;
pub mod init;
pub(crate) mod logging;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::boot::{
    DryRunOptions, DryRunSource, PlanOptions, RunOptions, DEFAULT_INTROSPECTION_URL,
};
use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "ecs-bootstrap",
    version,
    about = "Takes an EC2 instance from power-on to a registered ECS container instance, and tells CloudFormation",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the boot sequence (the default when no subcommand is given).
    Run(RunArgs),
    /// Run only the AWS::CloudFormation::Init block, with cfn-init's flags (also run as `cfn-init`).
    Init(crate::cli::init::InitArgs),
    /// Signal CloudFormation like cfn-signal (also run as `cfn-signal`).
    Signal(crate::cli::dropin::signal_cmd::SignalArgs),
    /// Print a resource's Metadata like cfn-get-metadata (also run as `cfn-get-metadata`).
    GetMetadata(crate::cli::dropin::get_metadata::GetMetadataArgs),
    /// Watch the stack and run hooks when Metadata changes, like cfn-hup (also run as `cfn-hup`).
    Hup(crate::cli::hup::HupArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Stack name or id (default: discovered from the instance's tags).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Logical id of the launch configuration / launch template carrying the Metadata
    /// (default: the stack's launch configuration / template the instance's group uses).
    #[arg(long, value_name = "LOGICAL_ID")]
    pub resource: Option<String>,
    /// Logical id of the resource with the CreationPolicy (default: the instance's Auto Scaling
    /// group, from its tags).
    #[arg(long, value_name = "LOGICAL_ID")]
    pub signal_resource: Option<String>,
    /// Region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION, else the instance's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Init configSets to run, in order (default: `default`, or the `config` key).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub configsets: Vec<String>,
    /// Write every file under DIR instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// How Init `files.context` templates render: chevron (cfn-init on Amazon Linux 2023) or
    /// pystache (cfn-init on Amazon Linux 2).
    #[arg(long, value_enum, value_name = "FLAVOUR", default_value = "chevron")]
    pub mustache: crate::init::mustache::Flavour,
    /// An unknown key in the Init block is an error (exit 3) instead of a warning (cfn-init
    /// ignores unknown keys silently). With --dry-run: a check of the whole document.
    #[arg(long)]
    pub strict: bool,
    /// Base URL of the ECS agent's introspection API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_INTROSPECTION_URL)]
    pub introspection_url: String,
    /// Seconds to wait for the cluster join (overrides the block's Timeout).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: Option<u64>,
    /// Do everything but SignalResource.
    #[arg(long)]
    pub no_signal: bool,
    /// Seconds for the whole run, signal included (keep it below the CreationPolicy timeout);
    /// near it, waiting stops and FAILURE is sent naming what was still awaited.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::boot::deadline::DEFAULT_DEADLINE_SECS,
          value_parser = clap::value_parser!(u64).range(4..=86400))]
    pub deadline: u64,
    /// Instances of this group booting together (e.g. the group's DesiredCapacity, from the
    /// UserData): the first CloudFormation call waits a random time in 0 to
    /// 1.1 x 2 x N / --cfn-rate seconds, so that the group's calls are not throttled at once.
    #[arg(long, value_name = "N", env = "ECS_BOOTSTRAP_GROUP_SIZE")]
    pub group_size: Option<u32>,
    /// CloudFormation requests per second the group may count on (with --group-size).
    #[arg(long, value_name = "PER_SECOND", env = "ECS_BOOTSTRAP_CFN_RATE",
          default_value_t = crate::boot::pace::DEFAULT_CFN_RATE)]
    pub cfn_rate: f64,
    /// Sign CloudFormation calls with this instance-profile role's credentials (SigV4) instead
    /// of the instance identity (as cfn-init's --role). Without it the role needs no
    /// cloudformation:* permission.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Read IMDS without a token (IMDSv1) when no IMDSv2 token can be had. Off by default.
    #[arg(long)]
    pub imds_v1_fallback: bool,
    /// Stay in the foreground even when started by UserData (cloud-final); by default a run
    /// there hands itself to a transient systemd unit, because ecs.service cannot start
    /// before cloud-final ends.
    #[arg(long)]
    pub foreground: bool,
    /// Run even if the state file says this instance already signalled SUCCESS.
    #[arg(long)]
    pub force: bool,
    /// Internal: the transient unit a UserData run hands off to (src/handoff.rs).
    #[arg(long, hide = true)]
    pub after_handoff: bool,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print the plan and do nothing: no file written, no service touched, no signal.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: read the Metadata from this local CloudFormation template (YAML or JSON).
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub template: Option<PathBuf>,
    /// With --template: a template parameter value (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param, requires = "template")]
    pub params: Vec<(String, String)>,
    /// Plan format for --dry-run.
    #[arg(long, value_enum, default_value = "text", requires = "dry_run")]
    pub output: Output,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

pub enum Mode {
    Run(RunOptions),
    DryRun(DryRunOptions, Output),
}

impl RunArgs {
    pub fn into_mode(self) -> Result<Mode, Error> {
        let plan = PlanOptions {
            region: self.region,
            configsets: self.configsets,
            root: self.root,
            introspection_url: self.introspection_url,
            timeout: self.timeout,
            signal: !self.no_signal,
            strict: self.strict,
        };
        if self.dry_run {
            let source = match self.template {
                Some(path) => DryRunSource::Template {
                    path,
                    params: self.params,
                },
                None => DryRunSource::Stack,
            };
            return Ok(Mode::DryRun(
                DryRunOptions {
                    source,
                    stack: self.stack,
                    resource: self.resource,
                    signal_resource: self.signal_resource,
                    plan,
                },
                self.output,
            ));
        }
        // Not given = discovered at run time from the instance's tags (src/boot/discover.rs). An
        // empty value (`--stack "$UNSET"` in a UserData script) has always counted as not given.
        let given = |v: Option<String>| v.filter(|v| !v.is_empty());
        let resource = given(self.resource);
        let signal_resource = match given(self.signal_resource) {
            // Without a signal the group is not needed: do not make discovery look for it.
            None if self.no_signal => resource.clone(),
            r => r,
        };
        Ok(Mode::Run(RunOptions {
            stack: given(self.stack),
            signal_resource,
            resource,
            plan,
            deadline_secs: self.deadline,
            imds: crate::aws::imds::ImdsOptions {
                v1_fallback: self.imds_v1_fallback,
            },
            force: self.force,
            after_handoff: self.after_handoff,
            role: self.role,
            pace: self.group_size.map(|group_size| crate::boot::pace::Pace {
                group_size,
                cfn_rate: self.cfn_rate,
            }),
        }))
    }
}

impl Cli {
    pub fn into_args(self) -> RunArgs {
        match self.command {
            Some(Command::Run(a)) => a,
            // The other commands (init, signal, get-metadata) are dispatched before (src/main.rs).
            _ => self.run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> Mode {
        let argv = std::iter::once("ecs-bootstrap").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .expect("parses")
            .into_args()
            .into_mode()
            .expect("a mode")
    }

    fn run(args: &[&str]) -> RunOptions {
        match mode(args) {
            Mode::Run(o) => o,
            Mode::DryRun(..) => panic!("a dry run for {args:?}"),
        }
    }

    fn names(o: &RunOptions) -> [Option<&str>; 3] {
        [
            o.stack.as_deref(),
            o.resource.as_deref(),
            o.signal_resource.as_deref(),
        ]
    }

    #[test]
    fn nothing_given_is_none_and_discovered() {
        let o = run(&[]);
        assert_eq!(names(&o), [None, None, None]);
        assert!(o.plan.signal && !o.force && !o.after_handoff);
        assert_eq!(o.plan.root, PathBuf::from("/"));
        assert_eq!(
            o.deadline_secs,
            crate::boot::deadline::DEFAULT_DEADLINE_SECS
        );
        // The same through the `run` subcommand.
        assert_eq!(names(&run(&["run"])), [None, None, None]);
    }

    #[test]
    fn given_names_are_carried_as_given() {
        let args = ["--stack", "S", "--resource", "R", "--signal-resource", "G"];
        assert_eq!(names(&run(&args)), [Some("S"), Some("R"), Some("G")]);
        let sub: Vec<&str> = std::iter::once("run").chain(args).collect();
        assert_eq!(names(&run(&sub)), [Some("S"), Some("R"), Some("G")]);
    }

    #[test]
    fn an_empty_name_counts_as_not_given() {
        let o = run(&["--stack", "", "--resource", "", "--signal-resource", ""]);
        assert_eq!(names(&o), [None, None, None]);
    }

    #[test]
    fn without_a_signal_the_group_is_not_looked_for() {
        let o = run(&["--no-signal", "--resource", "R"]);
        assert!(!o.plan.signal);
        assert_eq!(names(&o), [None, Some("R"), Some("R")]);
        // No resource given: both are discovered.
        assert_eq!(names(&run(&["--no-signal"])), [None, None, None]);
        // A given signal resource wins.
        let o = run(&["--no-signal", "--resource", "R", "--signal-resource", "G"]);
        assert_eq!(names(&o), [None, Some("R"), Some("G")]);
        // With a signal, the group is discovered, not taken from --resource.
        assert_eq!(names(&run(&["--resource", "R"])), [None, Some("R"), None]);
    }

    #[test]
    fn run_flags_reach_the_options() {
        let o = run(&[
            "--region",
            "eu-west-1",
            "--configsets",
            "a,b",
            "--root",
            "/tmp/r",
            "--timeout",
            "60",
            "--deadline",
            "300",
            "--force",
            "--after-handoff",
            "--role",
            "R",
            "--imds-v1-fallback",
            "--group-size",
            "10",
            "--cfn-rate",
            "2.5",
        ]);
        assert_eq!(o.plan.region.as_deref(), Some("eu-west-1"));
        assert_eq!(o.plan.configsets, ["a", "b"]);
        assert_eq!(o.plan.root, PathBuf::from("/tmp/r"));
        assert_eq!(o.plan.timeout, Some(60));
        assert_eq!(o.deadline_secs, 300);
        assert!(o.force && o.after_handoff && o.imds.v1_fallback);
        assert_eq!(o.role.as_deref(), Some("R"));
        let pace = o.pace.expect("paced");
        assert_eq!((pace.group_size, pace.cfn_rate), (10, 2.5));
    }

    #[test]
    fn dry_run_keeps_what_was_given() {
        match mode(&[
            "--dry-run",
            "--template",
            "t.yml",
            "--param",
            "K=V=W",
            "--output",
            "json",
            "--resource",
            "R",
        ]) {
            Mode::DryRun(o, output) => {
                assert_eq!(output, Output::Json);
                assert_eq!(o.stack, None);
                assert_eq!(o.resource.as_deref(), Some("R"));
                match o.source {
                    DryRunSource::Template { path, params } => {
                        assert_eq!(path, PathBuf::from("t.yml"));
                        assert_eq!(params, [("K".to_string(), "V=W".to_string())]);
                    }
                    DryRunSource::Stack => panic!("from the stack"),
                }
            }
            Mode::Run(_) => panic!("not a dry run"),
        }
        match mode(&["--dry-run", "--stack", "S"]) {
            Mode::DryRun(o, output) => {
                assert_eq!(output, Output::Text);
                assert!(matches!(o.source, DryRunSource::Stack));
                assert_eq!(o.stack.as_deref(), Some("S"));
            }
            Mode::Run(_) => panic!("not a dry run"),
        }
    }

    #[test]
    fn bad_command_lines_are_refused_by_the_parser() {
        for args in [
            &["--param", "K=V"][..],
            &["--template", "t.yml"],
            &["--dry-run", "--template", "t.yml", "--param", "=V"],
            &["--timeout", "0"],
            &["--deadline", "3"],
            &["run", "--stack", "S", "signal"],
        ] {
            let argv = std::iter::once("ecs-bootstrap").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }
}
