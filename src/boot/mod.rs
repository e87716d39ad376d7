//! The boot sequence, in order: identity, metadata, plan, Init, agent config, logs config,
//! services, cluster join, signal. Every failure after the stack is known ends in a FAILURE
//! signal, so a broken instance rolls its stack back in seconds instead of at the timeout.

pub mod deadline;
pub(crate) mod discover;
pub(crate) mod events;
pub(crate) mod handoff;
pub(crate) mod host;
pub mod identity;
pub mod join;
pub(crate) mod launch;
pub mod metadata;
pub(crate) mod once;
pub(crate) mod outcome;
pub mod pace;
pub(crate) mod plan;
pub(crate) mod services;
pub mod signal;
pub(crate) mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aws::{Clients, Endpoints};
use crate::config::settings::{self, Values};
use crate::error::{AtStep, Error, Failure, Step};
use crate::sys::fs::{write_atomic, FileMeta, Root};
use crate::sys::process::Runner;
use crate::template::{ResolveContext, Template};
use crate::{config::ecs_config, init, sys::redact};
use deadline::Deadline;
use host::Host;
use identity::Identity;
use metadata::ResourceMetadata;
pub use outcome::Outcome;
use plan::{Inputs, Plan};
use services::{Systemctl, DOCKER};
use signal::{Delivered, Status};

#[cfg(test)]
mod tests;

/// An address, not `localhost`: at boot the resolver may not be usable yet (found under a real
/// systemd with an empty /etc/hosts: every poll failed until the join timeout).
pub const DEFAULT_INTROSPECTION_URL: &str = "http://127.0.0.1:51678";

/// What the run and the dry run share: how the plan is made.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub region: Option<String>,
    pub configsets: Vec<String>,
    pub root: PathBuf,
    pub introspection_url: String,
    pub timeout: Option<u64>,
    pub signal: bool,
    /// `--strict`: an unknown key in the Init block is an error, not a warning.
    pub strict: bool,
}

/// `stack`, `resource`, `signal_resource`: `None` = not given, discovered (src/boot/discover.rs).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stack: Option<String>,
    pub resource: Option<String>,
    pub signal_resource: Option<String>,
    pub plan: PlanOptions,
    /// Run even when the state file says this instance is done (src/once.rs).
    pub force: bool,
    /// This is the unit a UserData run handed off to: resume from the hand-off file.
    pub after_handoff: bool,
    /// The whole run, signal included, ends within this many seconds.
    pub deadline_secs: u64,
    pub imds: crate::aws::imds::ImdsOptions,
    /// `--role NAME`: sign CloudFormation calls SigV4 with that instance-profile role's
    /// credentials. Without it they are signed with the instance identity, as the cfn helpers
    /// do, and the role needs no `cloudformation:*` permission.
    pub role: Option<String>,
    /// `--group-size`: spread the group's first CloudFormation calls (src/pace.rs).
    pub pace: Option<crate::boot::pace::Pace>,
}

/// Per-phase budgets, inside the run's deadline. Init has none of its own (its commands may
/// legitimately take most of the run); the join has the plan's `Timeout`.
const IDENTITY_BUDGET: Duration = Duration::from_secs(120);
const DISCOVERY_BUDGET: Duration = Duration::from_secs(120);
const METADATA_BUDGET: Duration = Duration::from_secs(300);
const CONFIG_BUDGET: Duration = Duration::from_secs(30);
const SERVICES_BUDGET: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub enum DryRunSource {
    Template {
        path: PathBuf,
        params: Vec<(String, String)>,
    },
    Stack,
}

#[derive(Debug, Clone)]
pub struct DryRunOptions {
    pub source: DryRunSource,
    pub stack: Option<String>,
    pub resource: Option<String>,
    pub signal_resource: Option<String>,
    pub plan: PlanOptions,
}

/// What a run does once the instance is configured (Init done, ecs.config written).
#[derive(Debug, Clone)]
pub enum Then {
    /// Start the services, wait for the join, signal: the unit, a shell, a test.
    Join,
    /// Under cloud-final: hand that part to a transient unit and return (src/handoff.rs).
    /// `args`: this invocation's arguments, for the unit's command line.
    HandOff { args: Vec<std::ffi::OsString> },
}

/// Who tells CloudFormation what: fixed once the instance and its stack are known, and carried
/// across the UserData hand-off (src/handoff.rs) unchanged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Target {
    pub identity: Identity,
    /// The identity document and signature CloudFormation calls are signed with (absent in a
    /// hand-off file written by an older version: then read again from IMDS).
    #[serde(default)]
    pub proof: Option<identity::Proof>,
    pub signal: signal::SignalSpec,
    /// Set when an earlier run already told CloudFormation (see `state::delivered_earlier`).
    pub earlier: Option<String>,
}

/// How long the handed-off unit waits for the configuring process to release the run lock.
const HANDOFF_LOCK_WAIT: Duration = Duration::from_secs(30);

pub async fn run(o: &RunOptions, then: Then) -> Result<Outcome, Failure> {
    // The one place a run gets the instance's processes, IMDS and endpoints.
    run_with(o, then, &Host::real()).await
}

/// [`run`] on `host` (a test passes its runner and local stubs, src/boot/tests.rs).
pub(crate) async fn run_with(o: &RunOptions, then: Then, host: &Host) -> Result<Outcome, Failure> {
    let deadline = Deadline::new(Duration::from_secs(o.deadline_secs));
    let result = run_within(o, &then, &deadline, host).await;
    // A notify unit that exits without READY=1 is failed by systemd, whatever the exit code.
    crate::sys::notify::ready("finished");
    report(&result, &deadline);
    result
}

/// The unit a UserData run handed off to: services, join and signal, from the hand-off file.
pub async fn resume(o: &RunOptions) -> Result<Outcome, Failure> {
    // Until the file is read, the original deadline is unknown: the report's clock starts here.
    let started = Deadline::new(Duration::from_secs(o.deadline_secs));
    let (result, deadline) = resume_within(o, &Host::real()).await;
    report(&result, &deadline.unwrap_or(started));
    result
}

async fn resume_within(
    o: &RunOptions,
    host: &Host,
) -> (Result<Outcome, Failure>, Option<Deadline>) {
    let root = Root::new(&o.plan.root);
    let _lock = match once::lock_waiting(&root, HANDOFF_LOCK_WAIT).await {
        Ok(once::Acquired::Held(l)) => l,
        Ok(once::Acquired::Busy(why)) => return (Ok(Outcome::skipped(why)), None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the run lock; running unguarded");
            once::RunLock::none()
        }
    };
    let h = match handoff::Handoff::take(&root).at(Step::HandOff) {
        Ok(h) => h,
        Err(f) => return (Err(f), None),
    };
    h.restore_env();
    // The configuring process's deadline, not a fresh one: CloudFormation's clock started
    // with the instance, not with this unit.
    let deadline = Deadline::new(h.remaining());
    tracing::info!(
        instance_id = %h.target.identity.instance_id,
        cluster = %h.join.cluster,
        from_pid = h.pid,
        deadline_left_secs = deadline.total().as_secs(),
        "resuming the boot sequence handed off by the UserData run"
    );
    if !o.force {
        if let Some(why) = once::already_done(&root, &h.target.identity.instance_id) {
            return (Ok(Outcome::skipped(why)), Some(deadline));
        }
    }
    let sdk = match host
        .sdk_config(&h.region, deadline.total())
        .await
        .at(Step::Services)
    {
        Ok(sdk) => sdk,
        Err(f) => return (Err(f), Some(deadline)),
    };
    let aws = host.clients(sdk, cfn_auth(o, h.target.proof.clone()));
    let cfn = &aws.cloudformation;
    let joined = start_and_join(&h.services, &h.join, &aws, &root, &deadline, &host.runner)
        .await
        .map(|()| h.join.cluster.clone());
    let result = finish(o.plan.signal, &root, &h.target, joined, cfn, &deadline).await;
    (result, Some(deadline))
}

/// The one structured event per run (src/events.rs).
fn report(result: &Result<Outcome, Failure>, deadline: &Deadline) {
    let (status, failed, reason, signal) = match result {
        Ok(o) => {
            let (status, reason, signal) = o.event_fields();
            (status, None, reason, signal)
        }
        Err(f) => (
            "FAILURE",
            Some(f.step),
            Some(f.to_string()),
            if f.step == Step::Signal {
                "not delivered"
            } else {
                "see the log"
            },
        ),
    };
    events::run(status, failed, reason, signal, deadline.elapsed());
}

async fn run_within(
    o: &RunOptions,
    then: &Then,
    deadline: &Deadline,
    host: &Host,
) -> Result<Outcome, Failure> {
    let runner = &host.runner;
    let started = Instant::now();
    let root = Root::new(&o.plan.root);
    let lock = match once::lock(&root) {
        Ok(once::Acquired::Held(l)) => l,
        Ok(once::Acquired::Busy(why)) => return Ok(Outcome::skipped(why)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the run lock; running unguarded");
            once::RunLock::none()
        }
    };
    let (identity, proof) = bounded(
        Step::Identity,
        deadline,
        Some(IDENTITY_BUDGET),
        "IMDS (the instance identity document and its signature)",
        identity::with_proof(host.imds, o.imds),
    )
    .await
    .inspect_err(|_| {
        tracing::error!("the instance id is unknown without IMDS, so CloudFormation cannot be signalled; the CreationPolicy will time out")
    })?;
    tracing::info!(instance_id = %identity.instance_id, region = %identity.region, az = %identity.availability_zone, "instance identity");
    if !o.force {
        if let Some(why) = once::already_done(&root, &identity.instance_id) {
            return Ok(Outcome::skipped(why));
        }
    }
    let (region, _) = crate::aws::region::resolve(
        o.plan.region.as_deref(),
        crate::aws::region::Instance::Known(&identity.region),
    )
    .await;
    let sdk = host
        .sdk_config(&region, deadline.total())
        .await
        .at(Step::Discovery)?;
    let auth = cfn_auth(o, Some(proof.clone()));
    tracing::info!(signing = auth.describe(), "CloudFormation calls");
    let aws = host.clients(sdk, auth);
    let cfn = &aws.cloudformation;
    let found = bounded(
        Step::Discovery,
        deadline,
        Some(DISCOVERY_BUDGET),
        "discovery (the stack and resources of this instance)",
        discover::complete(
            &discover::Given {
                stack: o.stack.clone(),
                resource: o.resource.clone(),
                signal_resource: o.signal_resource.clone(),
            },
            &identity,
            &aws,
            host.imds,
        ),
    )
    .await?;
    let signal_spec = signal::SignalSpec {
        stack: found.stack.clone(),
        resource: found.signal_resource.clone(),
        unique_id: identity.instance_id.clone(),
    };
    // A reboot or a restart of the unit runs everything again (converging to the same files),
    // but CloudFormation is told only once: a second signal would at best be refused.
    let earlier = state::delivered_earlier(&root, &identity, &signal_spec);
    let target = Target {
        identity,
        proof: Some(proof),
        signal: signal_spec,
        earlier,
    };
    let identity = &target.identity;

    crate::boot::pace::before_first_call(o.pace, deadline.total(), &identity.instance_id).await;
    let configured = configure(&found, &o.plan, identity, cfn, &root, deadline, runner).await;
    // The shipped ecs.service drop-in orders the agent after this unit: from here on it may
    // start, with ecs.config in place (or, on a failure, with whatever was there: the FAILURE
    // signal below is what matters then).
    crate::sys::notify::ready(match &configured {
        Ok(_) => "configured; starting the services and waiting for the cluster join",
        Err(_) => "configuration failed; signalling FAILURE",
    });
    let joined = match (configured, then) {
        (Ok(plan), Then::Join) => {
            start_and_join(&plan.services, &plan.join, &aws, &root, deadline, runner)
                .await
                .map(|()| plan.join.cluster)
        }
        (Ok(plan), Then::HandOff { args }) => {
            let h = handoff::Handoff {
                target: target.clone(),
                region: region.clone(),
                services: plan.services.clone(),
                join: plan.join.clone(),
                deadline_unix_ms: handoff::Handoff::deadline_after(
                    deadline
                        .end()
                        .saturating_duration_since(tokio::time::Instant::now()),
                ),
                pid: std::process::id(),
                env: handoff::private_env(),
            };
            match phase(Step::HandOff, hand_off(&h, &root, lock, args, runner)).await {
                Ok(()) => {
                    return Ok(Outcome::HandedOff {
                        instance_id: identity.instance_id.clone(),
                        cluster: plan.join.cluster,
                    })
                }
                Err(f) => Err(f),
            }
        }
        (Err(f), _) => Err(f),
    };
    let result = finish(o.plan.signal, &root, &target, joined, cfn, deadline).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "boot sequence complete"
    );
    Ok(result)
}

/// How a run signs its CloudFormation calls: with `--role`, that role's credentials (SigV4);
/// otherwise the instance identity, read once at the start (`proof`), so that a FAILURE signal
/// needs nothing that could have broken since.
fn cfn_auth(o: &RunOptions, proof: Option<identity::Proof>) -> crate::aws::CfnAuth {
    use crate::aws::identity_auth::ProofSource;
    match &o.role {
        Some(role) => crate::aws::CfnAuth::from_flags(None, Some(role)),
        None => crate::aws::CfnAuth::Identity(match proof {
            Some(p) => ProofSource::Known(p),
            None => ProofSource::Imds,
        }),
    }
}

/// Saves the hand-off, lets go of the run lock (the unit takes it) and starts the unit.
async fn hand_off(
    h: &handoff::Handoff,
    root: &Root,
    lock: once::RunLock,
    args: &[std::ffi::OsString],
    runner: &Arc<dyn Runner>,
) -> Result<(), Error> {
    h.save(root)?;
    drop(lock);
    handoff::hand_off(args, runner.as_ref())
        .await
        .inspect_err(|_| {
            // This process signals FAILURE itself; a unit started later must not resume it.
            let _ = root.remove(handoff::FILE);
        })
}

/// Step 6: one signal for the run's outcome (unless an earlier run already sent it), and the
/// state file that says so.
async fn finish(
    signal: bool,
    root: &Root,
    target: &Target,
    joined: Result<String, Failure>,
    cfn: &aws_sdk_cloudformation::Client,
    deadline: &Deadline,
) -> Result<Outcome, Failure> {
    let status = if joined.is_ok() {
        Status::Success
    } else {
        Status::Failure
    };
    let delivered = if let (true, Some(before)) = (signal, &target.earlier) {
        tracing::info!(earlier = %before, now = status.as_str(), "CloudFormation was already signalled by an earlier run; not signalling again");
        Ok(Some(Delivered::Earlier))
    } else if signal {
        phase(
            Step::Signal,
            deadline.bound_signal(signal::send(cfn, &target.signal, status)),
        )
        .await
        .map(Some)
        .inspect_err(|lost| tracing::error!(error = %lost, "could not signal {}", status.as_str()))
    } else {
        Ok(None)
    };
    state::record(
        root,
        &target.identity,
        &target.signal,
        status,
        joined.as_ref().err(),
        matches!(delivered, Ok(Some(_))),
    );
    // The run's own failure, if any, is the more useful reason; a lost signal on top of it is
    // logged. A lost SUCCESS is a failure of its own.
    let delivered = match delivered {
        Ok(d) => d,
        Err(lost) => return Err(joined.err().unwrap_or(lost)),
    };
    Ok(Outcome::joined(
        target.identity.instance_id.clone(),
        joined?,
        delivered,
    ))
}

/// Steps 2-3: metadata, the plan, Init, the agent and logs configs. Returns the plan.
async fn configure(
    found: &discover::Target,
    p: &PlanOptions,
    identity: &Identity,
    cfn: &aws_sdk_cloudformation::Client,
    root: &Root,
    deadline: &Deadline,
    runner: &Arc<dyn Runner>,
) -> Result<Plan, Failure> {
    let metadata = bounded(
        Step::Metadata,
        deadline,
        Some(METADATA_BUDGET),
        "cloudformation:DescribeStackResource",
        metadata::from_stack(cfn, &found.stack, &found.resource),
    )
    .await?;
    // `plan` registers the Metadata's secrets before anything is logged or applied.
    let mut plan = plan(
        identity.clone(),
        &metadata,
        Values::Real,
        p,
        &found.stack,
        &found.signal_resource,
    )?;
    let logs_changed = write_configuration(&plan, root, deadline, runner).await?;
    // What `ecs-bootstrap hup` watches without a cfn-hup.conf (src/hup/launch.rs).
    launch::LaunchRecord {
        stack: found.stack.clone(),
        resource: found.resource.clone(),
        signal_resource: found.signal_resource.clone(),
        region: cfn
            .config()
            .region()
            .map_or_else(|| identity.region.clone(), |r| r.to_string()),
        configsets: p.configsets.clone(),
        init: launch::digest(metadata.metadata.get(init::BLOCK)),
        settings: launch::digest(metadata.metadata.get(settings::BLOCK)),
    }
    .write(root);
    if logs_changed {
        // A CloudWatch agent that is already running (an AMI that starts it with its own
        // config) does not read a new fragment until it restarts; `start` alone does nothing.
        for s in &mut plan.services {
            if s.unit == crate::config::logs_config::UNIT {
                s.restart_if_running = true;
            }
        }
    }
    Ok(plan)
}

/// The plan from a resource's Metadata, as a run makes it (also `hup`'s zero-config mode).
pub(crate) fn plan(
    identity: Identity,
    metadata: &ResourceMetadata,
    values: Values,
    p: &PlanOptions,
    stack: &str,
    signal_resource: &str,
) -> Result<Plan, Failure> {
    // The dry run shows what a run would log: with the same secrets registered.
    redact::register_from_metadata(&metadata.metadata);
    // Everything is parsed and validated before anything is applied: a bad key in the
    // ecs-bootstrap block must not leave an instance half-configured by Init.
    let settings = settings::parse(&metadata.metadata, values).at(Step::Settings)?;
    let keys = crate::input::Keys::cfn_init(p.strict);
    let init = init::parse(&metadata.metadata, &p.configsets, keys).at(Step::Init)?;
    Plan::build(Inputs {
        identity,
        metadata,
        settings: &settings,
        init,
        root: &Root::new(&p.root),
        stack,
        signal_resource,
        introspection_url: &p.introspection_url,
        timeout_override: p.timeout,
        signal: p.signal,
    })
    .at(Step::Settings)
}

/// Init, ecs.config and the CloudWatch fragment; true when the fragment changed.
async fn write_configuration(
    plan: &Plan,
    root: &Root,
    deadline: &Deadline,
    runner: &Arc<dyn Runner>,
) -> Result<bool, Failure> {
    bounded(
        Step::Init,
        deadline,
        None,
        "an Init command to finish (the last 'running command' in the log)",
        init::apply(&plan.init, root, runner.as_ref()),
    )
    .await?;
    bounded(
        Step::AgentConfig,
        deadline,
        Some(CONFIG_BUDGET),
        "the ECS agent config",
        async { write_agent_config(plan, root).map(drop) },
    )
    .await?;
    bounded(
        Step::LogsConfig,
        deadline,
        Some(CONFIG_BUDGET),
        "the CloudWatch agent config",
        async { write_logs_config(plan, root) },
    )
    .await
}

/// The CloudWatch agent fragment, if the plan has one; true when the file changed.
pub(crate) fn write_logs_config(plan: &Plan, root: &Root) -> Result<bool, Error> {
    match &plan.logs_config {
        Some(l) => write_atomic(
            root,
            l.path,
            l.content.as_bytes(),
            FileMeta {
                mode: 0o644,
                uid: None,
                gid: None,
            },
        )
        .map(|outcome| {
            tracing::info!(path = l.path, ?outcome, "CloudWatch agent config");
            outcome != crate::sys::fs::WriteOutcome::Unchanged
        }),
        None => Ok(false),
    }
}

/// Steps 4-5: check the cluster, start docker and ecs, wait until the agent has registered in
/// the cluster (src/join.rs).
async fn start_and_join(
    services: &[services::ServiceAction],
    join: &join::JoinSpec,
    aws: &Clients,
    root: &Root,
    deadline: &Deadline,
    runner: &Arc<dyn Runner>,
) -> Result<(), Failure> {
    let systemctl = Systemctl::new(runner.clone());
    let ecs = &aws.ecs;
    let region = aws.region();
    // Before anything starts: a missing cluster fails here in seconds, with the fix, instead of
    // in the agent's log (src/join/cluster.rs).
    bounded(
        Step::Cluster,
        deadline,
        Some(join::cluster::BUDGET + Duration::from_secs(5)),
        "ecs:DescribeClusters",
        join::cluster::check(ecs, aws.credentials(), &join.cluster, &region),
    )
    .await?;
    let left = deadline
        .work_end()
        .saturating_duration_since(tokio::time::Instant::now());
    if Duration::from_secs(join.timeout_secs) > left {
        tracing::warn!(
            timeout_secs = join.timeout_secs,
            left_secs = left.as_secs(),
            "the join Timeout is longer than the run's deadline leaves; the deadline ends the wait first (raise --deadline, below the CreationPolicy timeout)"
        );
    }
    // Only what the agent and ecs-init log from here on is this run's (src/join/agent_log.rs).
    let logs = join::agent_log::AgentLogs::from_now(root, &join.cluster).at(Step::Services)?;
    // The join budget starts when the services are asked to start: that is what it measures.
    // Past the run's deadline, the phase bound ends the wait first and names the deadline.
    let join_end = tokio::time::Instant::now() + std::time::Duration::from_secs(join.timeout_secs);
    bounded(
        Step::Services,
        deadline,
        Some(SERVICES_BUDGET),
        "the services to start (docker to become active)",
        async {
            services::start(services, &systemctl).await?;
            services::wait_active(&systemctl, DOCKER, join_end).await
        },
    )
    .await?;
    let waiting_for = format!("the ECS agent to register in cluster '{}'", join.cluster);
    bounded(Step::Join, deadline, None, &waiting_for, async {
        let meta = join::wait_for_agent(join, &systemctl, logs, join_end).await?;
        let arn = meta.container_instance_arn.unwrap_or_default();
        join::confirm_with_ecs(ecs, aws.credentials(), &join.cluster, &arn, join_end).await
    })
    .await
}

/// ecs.config from the plan, keeping the keys it does not set; true when the file changed.
pub(crate) fn write_agent_config(plan: &Plan, root: &Root) -> Result<bool, Error> {
    let path = root.map(plan.agent_config.path)?;
    let existing = match root.read_to_string(plan.agent_config.path) {
        Ok(text) => ecs_config::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let config = &plan.agent_config.config;
    let overridden = config.overrides(&existing);
    if !overridden.is_empty() {
        tracing::info!(keys = ?overridden, "overriding values already in ecs.config");
    }
    let meta = FileMeta {
        mode: config.mode(&existing),
        uid: Some(0).filter(|_| nix::unistd::geteuid().is_root()),
        gid: Some(0).filter(|_| nix::unistd::geteuid().is_root()),
    };
    let outcome = write_atomic(
        root,
        plan.agent_config.path,
        config.render(&existing).as_bytes(),
        meta,
    )?;
    tracing::info!(
        path = plan.agent_config.path,
        mode = format!("{:04o}", meta.mode),
        ?outcome,
        "ECS agent config"
    );
    Ok(outcome != crate::sys::fs::WriteOutcome::Unchanged)
}

/// Runs one step, logs its duration as a structured event, and tags a failure with the step.
async fn phase<T, F>(step: Step, fut: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let t = Instant::now();
    let r = fut.await;
    let elapsed = t.elapsed();
    let ms = elapsed.as_millis() as u64;
    match &r {
        Ok(_) => {
            tracing::info!(step = step.name(), duration_ms = ms, "step done");
            events::phase(step, elapsed, None);
        }
        Err(e) => {
            tracing::debug!(step = step.name(), duration_ms = ms, error = %e, "step failed");
            events::phase(step, elapsed, Some(e));
        }
    }
    r.at(step)
}

/// [`phase`] within the run's deadline and the phase's own budget.
async fn bounded<T, F>(
    step: Step,
    deadline: &Deadline,
    budget: Option<Duration>,
    waiting_for: &str,
    fut: F,
) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    phase(step, deadline.bound(waiting_for, budget, fut)).await
}

/// The dry run: the same plan as a real run, from a local template (no AWS at all, fake
/// identity) or from the stack (DescribeStackResource only).
pub async fn dry_run(o: &DryRunOptions) -> Result<Plan, Failure> {
    // A plan from a template asks no AWS service, IMDS included.
    let (region, _) = crate::aws::region::resolve(
        o.plan.region.as_deref(),
        crate::aws::region::Instance::Unknown,
    )
    .await;
    let identity = Identity::fake(&region);
    match &o.source {
        DryRunSource::Template { path, params } => {
            let template = Template::from_path(path).at(Step::Metadata)?;
            let stack = o
                .stack
                .clone()
                .unwrap_or_else(|| "<stack-name>".to_string());
            let mut ctx = ResolveContext::fake(&stack, &region);
            ctx.params = params.iter().cloned().collect();
            if let Some(unknown) = template.unknown_params(&ctx).first() {
                return Err(Error::Usage(format!(
                    "--param {unknown}: the template has no parameter '{unknown}' (it has: {})",
                    template.parameter_names().join(", ")
                )))
                .at(Step::Metadata);
            }
            for secret in template.no_echo_values(&ctx) {
                redact::register(&secret);
            }
            let source = path.display().to_string();
            let resource = match &o.resource {
                Some(r) => r.clone(),
                None => crate::template::discover::bootstrap_resource(&template, &source)
                    .at(Step::Metadata)?,
            };
            let metadata =
                metadata::from_template(&template, &source, &resource, &ctx).at(Step::Metadata)?;
            let signal_resource = match &o.signal_resource {
                Some(r) => r.clone(),
                None => crate::template::discover::signal_resource(&template, &resource)
                    .at(Step::Metadata)?,
            };
            plan(
                identity,
                &metadata,
                Values::MayBePlaceholders,
                &o.plan,
                &stack,
                &signal_resource,
            )
            // A bad key in the Metadata is shown at its file:line in the template.
            .map_err(|mut f| {
                *f.error = crate::input::locate(*f.error, &template, &resource);
                f
            })
        }
        DryRunSource::Stack => {
            let discovered = o.stack.is_none() || o.resource.is_none();
            let (identity, region, stack, resource, signal_resource) = match (&o.stack, &o.resource)
            {
                (Some(stack), Some(resource)) => (
                    identity,
                    region,
                    stack.clone(),
                    resource.clone(),
                    o.signal_resource
                        .clone()
                        .unwrap_or_else(|| resource.clone()),
                ),
                // On an instance, zero-config: the plan the unit would run.
                _ => dry_run_discover(o).await?,
            };
            let (stack, signal_resource) = (&stack, &signal_resource);
            let sdk = crate::aws::sdk_config(&region).await;
            // Given --stack and --resource, this is usually a workstation: its own credentials.
            // Discovered on an instance: the instance identity, as the run signs.
            let auth = if discovered {
                crate::aws::CfnAuth::Identity(crate::aws::identity_auth::ProofSource::Imds)
            } else {
                crate::aws::CfnAuth::SigV4(None)
            };
            let aws = Clients::new(sdk, auth, &Endpoints::default(), None);
            let metadata = phase(
                Step::Metadata,
                metadata::from_stack(&aws.cloudformation, stack, &resource),
            )
            .await?;
            plan(
                identity,
                &metadata,
                Values::Real,
                &o.plan,
                stack,
                signal_resource,
            )
        }
    }
}

/// A dry run without `--stack`/`--resource`: this instance's identity and its discovered stack.
async fn dry_run_discover(
    o: &DryRunOptions,
) -> Result<(Identity, String, String, String, String), Failure> {
    let identity = identity::from_imds().await.map_err(|e| {
        Error::Usage(format!(
            "--dry-run needs --template FILE, or --stack and --resource, or an instance to discover them on ({e})"
        ))
    }).at(Step::Discovery)?;
    let (region, _) = crate::aws::region::resolve(
        o.plan.region.as_deref(),
        crate::aws::region::Instance::Known(&identity.region),
    )
    .await;
    let sdk = crate::aws::sdk_config(&region).await;
    let aws = Clients::new(
        sdk,
        crate::aws::CfnAuth::Identity(crate::aws::identity_auth::ProofSource::Imds),
        &Endpoints::default(),
        None,
    );
    let given = discover::Given {
        stack: o.stack.clone(),
        resource: o.resource.clone(),
        signal_resource: o.signal_resource.clone(),
    };
    let t = phase(
        Step::Discovery,
        discover::complete(&given, &identity, &aws, crate::aws::imds::shared()),
    )
    .await?;
    Ok((identity, region, t.stack, t.resource, t.signal_resource))
}
