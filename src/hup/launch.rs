//! The zero-config mode: no cfn-hup.conf, so watch this instance's own launch resource and
//! apply its two blocks as the boot run did. Two built-in "hooks", on
//! `Metadata.AWS::CloudFormation::Init` (re-run Init with the boot's configSets) and on
//! `Metadata.ecs-bootstrap` (rewrite ecs.config and the CloudWatch fragment through the boot's
//! own code, restart only what changed). A change of `Cluster` on a registered instance is
//! refused: the agent would not start (docs/hup.md).
//!
//! What to watch comes from the boot run's `launch.json` (src/boot/launch.rs), else from
//! discovery (src/boot/discover.rs, as `run` without flags). The calls are signed with the
//! instance identity (CFN_V1), as `run` signs them.
//!
//! State: in the same store as the hooks', under keys of their own (see [`key`]), holding a
//! digest of each block (never the block: Metadata holds secrets). With no stored value the
//! boot's digests from `launch.json` are the starting point; with neither, the first poll
//! records and does nothing. A failed apply is kept as a failure with its reason and retried
//! with the hooks' backoff ([`Store::due`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value as Json;

use super::cfn::Describe;
use super::poll::{Pace, Report};
use super::rules::Value;
use super::store::{serialize, Store};
use crate::boot::launch::{digest, LaunchRecord};
use crate::boot::metadata::ResourceMetadata;
use crate::boot::plan::Plan;
use crate::boot::signal::Status;
use crate::boot::state::StateRecord;
use crate::boot::{identity::Identity, PlanOptions, DEFAULT_INTROSPECTION_URL};
use crate::config::{ecs_config, logs_config, settings};
use crate::error::{Error, Result};
use crate::sys::fs::Root;
use crate::sys::process::Runner;
use crate::sys::systemctl::{self, Systemctl};

/// The two blocks a zero-config poll applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Init,
    Settings,
}

impl Block {
    pub fn name(self) -> &'static str {
        match self {
            Block::Init => crate::init::BLOCK,
            Block::Settings => settings::BLOCK,
        }
    }
}

/// What the zero-config mode watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub stack: String,
    pub resource: String,
    pub signal_resource: String,
    pub region: String,
    pub configsets: Vec<String>,
    /// The boot's digests: the starting point when the store has none.
    pub booted: (Option<String>, Option<String>),
}

impl Watch {
    pub fn from_record(r: LaunchRecord) -> Watch {
        Watch {
            stack: r.stack,
            resource: r.resource,
            signal_resource: r.signal_resource,
            region: r.region,
            configsets: r.configsets,
            booted: (r.init, r.settings),
        }
    }
}

/// The store key of a block: `ecs-bootstrap|<Block>@<stack>/<resource>`. A cfn-hup key is
/// `<hook>|<path>` with a path starting `Resources.`, and stack names and logical ids have no
/// `|`, so the two never meet; another stack or resource starts afresh.
pub fn key(block: Block, w: &Watch) -> String {
    format!("ecs-bootstrap|{}@{}/{}", block.name(), w.stack, w.resource)
}

/// The stored form of a block's state: its digest, or `absent`, so that a block that appears
/// later is a change and not a first sighting.
fn stored(d: Option<String>) -> Value {
    Value::Json(Json::String(d.unwrap_or_else(|| "absent".into())))
}

/// The instance the poll applies to: its root, its identity (the plan's, and whose
/// registration `state.json` records) and the runner for Init commands and systemctl.
pub struct Host {
    pub root: PathBuf,
    pub identity: Identity,
    pub runner: Arc<dyn Runner>,
}

/// `launch.json`, else discovery with the instance identity (as `run` without flags).
pub async fn find(root: &Root, identity: &Identity) -> Result<Watch> {
    if let Some(r) = LaunchRecord::read(root) {
        tracing::info!(
            path = crate::boot::launch::FILE,
            "launch resource from the boot run"
        );
        return Ok(Watch::from_record(r));
    }
    tracing::info!("no launch record of a boot run: discovering the launch resource");
    let sdk = crate::aws::sdk_config(&identity.region).await;
    let aws = crate::aws::Clients::new(
        sdk,
        crate::aws::CfnAuth::Identity(crate::aws::identity_auth::ProofSource::Imds),
        &crate::aws::Endpoints::default(),
        None,
    );
    let given = crate::boot::discover::Given {
        stack: None,
        resource: None,
        signal_resource: None,
    };
    let t =
        crate::boot::discover::complete(&given, identity, &aws, crate::aws::imds::shared()).await?;
    Ok(Watch {
        stack: t.stack,
        resource: t.resource,
        signal_resource: t.signal_resource,
        region: identity.region.clone(),
        configsets: Vec::new(),
        booted: (None, None),
    })
}

/// One zero-config poll: one DescribeStackResource, then Init and the settings block if they
/// changed (Init first, as the boot run).
pub async fn poll<D: Describe>(
    w: &Watch,
    cfn: &D,
    store: &mut Store,
    host: &Host,
    pace: &Pace,
) -> Report {
    let mut report = Report::default();
    let resource = match cfn.describe(&w.resource).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(resource = %w.resource, "{e}");
            report.errors += 1;
            return report;
        }
    };
    if let Some(status) = resource.in_progress() {
        tracing::info!(resource = %w.resource, %status, "resource update in progress; skipped this poll");
        return report;
    }
    let metadata = resource
        .metadata
        .unwrap_or_else(|| Json::Object(Default::default()));
    let mut changed = Vec::new();
    for (block, booted) in [(Block::Init, &w.booted.0), (Block::Settings, &w.booted.1)] {
        let k = key(block, w);
        let new = stored(digest(metadata.get(block.name())));
        let old = store
            .old(&k)
            .or_else(|| booted.clone().map(|d| stored(Some(d))));
        match old {
            Some(old) if serialize(Some(&old)) != serialize(Some(&new)) => {
                changed.push((block, k, new))
            }
            Some(_) => store.record(&k, Some(&new)),
            None => {
                tracing::info!(block = block.name(), "first sighting: recorded");
                store.record(&k, Some(&new));
            }
        }
    }
    if changed.is_empty() {
        return report;
    }
    let now = (pace.now_unix)();
    if let Some((block, k, _)) = changed
        .iter()
        .find(|(_, k, new)| !store.due(k, Some(new), now))
    {
        let next = store.failure(k).map(|f| f.next_try_unix).unwrap_or(now);
        tracing::info!(
            block = block.name(),
            retry_in_secs = next.saturating_sub(now),
            "applying failed before on this value; backing off"
        );
        report.deferred += 1;
        return report;
    }
    report.ran += 1;
    let blocks: Vec<&str> = changed.iter().map(|(b, _, _)| b.name()).collect();
    tracing::info!(resource = %w.resource, changed = ?blocks, "Metadata changed: applying");
    match apply(w, &metadata, &changed, host).await {
        Ok(()) => {
            for (_, k, new) in &changed {
                store.record(k, Some(new));
            }
        }
        Err(e) => {
            report.failed += 1;
            for (block, k, new) in &changed {
                let f = store.fail_because(k, Some(new), e.to_string(), now, pace.interval_secs);
                tracing::error!(
                    block = block.name(),
                    attempts = f.attempts,
                    next_try_unix = f.next_try_unix,
                    "not applied: {e}"
                );
            }
        }
    }
    report
}

/// Everything is parsed and checked (the plan, the cluster) before anything is applied, as in
/// the boot run.
async fn apply(
    w: &Watch,
    metadata: &Json,
    changed: &[(Block, String, Value)],
    host: &Host,
) -> Result<()> {
    let root = Root::new(&host.root);
    let plan = plan(w, metadata, host)?;
    let settings_changed = changed.iter().any(|(b, _, _)| *b == Block::Settings);
    if settings_changed {
        refuse_cluster_change(&root, &host.identity, &plan.join.cluster)?;
    }
    if changed.iter().any(|(b, _, _)| *b == Block::Init) {
        tracing::info!(configsets = ?w.configsets, "re-running Init");
        crate::init::apply(&plan.init, &root, host.runner.as_ref()).await?;
    }
    if settings_changed {
        apply_settings(&plan, &root, host).await?;
    }
    Ok(())
}

fn plan(w: &Watch, metadata: &Json, host: &Host) -> Result<Plan> {
    let rm = ResourceMetadata {
        resource_type: None,
        metadata: metadata.clone(),
        origin: format!("{}/{}", w.stack, w.resource),
    };
    let p = PlanOptions {
        region: Some(w.region.clone()),
        configsets: w.configsets.clone(),
        root: host.root.clone(),
        introspection_url: DEFAULT_INTROSPECTION_URL.into(),
        timeout: None,
        signal: false,
        // As the boot run read it: an unknown key there was a warning, and stays one.
        strict: false,
    };
    crate::boot::plan(
        host.identity.clone(),
        &rm,
        settings::Values::Real,
        &p,
        &w.stack,
        &w.signal_resource,
    )
    .map_err(|f| *f.error)
}

/// The agent keeps the cluster it registered in (its checkpoint) and refuses to start with
/// another one (agent/app/agent.go:692,723-739@8dfceca6: clusterMismatchError, then
/// ExitTerminal at :417), so a registered instance cannot move: replace it instead.
/// Registered = the boot run of this instance joined (`state.json` says SUCCESS) and ecs.config
/// names a cluster.
fn refuse_cluster_change(root: &Root, identity: &Identity, new: &str) -> Result<()> {
    let Ok(text) = root.read_to_string(ecs_config::PATH) else {
        return Ok(());
    };
    let Some(old) = ecs_config::parse(&text)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "ECS_CLUSTER")
        .map(|(_, v)| v)
    else {
        return Ok(());
    };
    let registered = StateRecord::read(root)
        .is_some_and(|r| r.instance_id == identity.instance_id && r.status == Status::Success);
    if old != new && registered {
        return Err(Error::invalid(
            "ecs-bootstrap.Cluster",
            format!(
                "changed from '{old}' to '{new}' on an instance registered in '{old}': refused, nothing rewritten (an instance cannot move clusters; replace it)"
            ),
        ));
    }
    Ok(())
}

/// ecs.config and the CloudWatch fragment through the boot's writers; the ECS agent restarted
/// only if ecs.config changed (running tasks keep running: docs/hup.md), the CloudWatch agent
/// only if its fragment changed and it runs.
async fn apply_settings(plan: &Plan, root: &Root, host: &Host) -> Result<()> {
    let ecs_changed = crate::boot::write_agent_config(plan, root)?;
    let logs_changed = crate::boot::write_logs_config(plan, root)?;
    let systemctl = Systemctl::new(host.runner.clone());
    if ecs_changed {
        tracing::info!("ecs.config changed: restarting the ECS agent");
        // --no-block, as every start here: ecs-init's pre-start may load the agent image.
        systemctl
            .must(&systemctl::argv(&[
                "restart",
                "--no-block",
                crate::boot::services::ECS,
            ]))
            .await?;
    }
    if logs_changed {
        tracing::info!("CloudWatch agent config changed: restarting it if it runs");
        if let Err(e) = systemctl
            .must(&systemctl::try_restart_no_block(logs_config::UNIT))
            .await
        {
            // An optional unit, as at boot: the fragment is in place for its next start.
            tracing::warn!("{e}");
        }
    }
    if !ecs_changed && !logs_changed {
        tracing::info!("the ecs-bootstrap block changed but neither file did: nothing restarted");
    }
    Ok(())
}
