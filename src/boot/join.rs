//! Step 5: wait until the ECS agent says this instance is registered in the expected cluster,
//! then confirm it from the control plane.
//!
//! The agent opens its introspection port only after registering (`agent/app/agent.go:500,992`
//! @8dfceca6, shared reference.md §4), so "connection refused" just means "not yet". Three
//! things end the wait early, watched side by side with the port:
//! - the agent's own terminal error in its log ([`agent_log`]): a missing cluster makes the
//!   agent exit 1 and ecs-init restart it forever, so systemd never sees it fail;
//! - a failed `ecs.service` (only a terminal exit 5 of the agent, or ecs-init's own failure,
//!   reaches the unit) or `docker.service`;
//! - the deadline.
//!
//! Death right after registering: a registration counts only once the agent has kept answering
//! `/v1/metadata` with the same ARN for [`SETTLE`], and ecs-init has logged no `Agent exited`
//! line meanwhile. Otherwise the wait goes on (ecs-init restarts the agent; a registration
//! that then holds counts), and a timeout says how often and how the agent exited.

pub mod agent_log;
pub mod cluster;

use std::cell::RefCell;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::boot::services::{Systemctl, DOCKER, ECS};
use crate::error::{Error, Result};
use crate::sys::retry::{retry_until, Backoff, Failed, Verdict};
use agent_log::AgentLogs;

/// Short enough that the join is seen well within 250 ms of the agent answering.
const POLL: Duration = Duration::from_millis(100);
/// The logs are read this often: a terminal error is reported within this of ecs-init's line.
const LOG_CHECK: Duration = Duration::from_millis(250);
/// Spawning systemctl is not free; the units are checked less often than the port.
const UNIT_CHECK: Duration = Duration::from_millis(500);
/// How long a fresh registration must hold before it counts. The real agent answers about
/// 1.2 s after `start ecs` (reference.md §4, measured): one more second is a small price next to
/// a SUCCESS for an instance whose agent died as it registered (docs/operations.md, "The join").
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinSpec {
    pub introspection_url: String,
    pub cluster: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AgentMetadata {
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub container_instance_arn: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// Cluster name from a name or an ARN (`arn:aws:ecs:r:a:cluster/NAME`).
pub fn cluster_name(c: &str) -> &str {
    match c.split_once(":cluster/") {
        Some((head, name)) if head.starts_with("arn:") => name,
        _ => c,
    }
}

/// `logs`: made with [`AgentLogs::from_now`] right before the services were started.
pub async fn wait_for_agent(
    spec: &JoinSpec,
    systemctl: &Systemctl,
    logs: AgentLogs,
    deadline: Instant,
) -> Result<AgentMetadata> {
    // One task, two futures: they share the logs through a RefCell, never borrowed across an
    // await. Side by side so a slow `systemctl` never delays seeing the join.
    let logs = RefCell::new(logs);
    tokio::select! {
        r = poll_agent(spec, &logs, deadline) => r,
        e = watch(systemctl, &logs) => Err(e),
    }
}

/// Why a poll did not see a registration.
enum Poll {
    Registered(AgentMetadata),
    Not(String),
}

/// What one attempt of the wait saw.
enum Seen {
    /// Registered in the expected cluster, and it held for [`SETTLE`].
    Joined(AgentMetadata),
    Not(String),
    /// A registration that did not hold.
    Unsettled(String),
    /// Registered in another cluster: waiting cannot fix it.
    Elsewhere(Error),
}

async fn poll_once(http: &reqwest::Client, url: &str) -> Poll {
    match http.get(url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<AgentMetadata>().await {
            Ok(meta) => match meta.container_instance_arn.as_deref() {
                Some(arn) if !arn.is_empty() => Poll::Registered(meta),
                _ => Poll::Not("the agent answered without a ContainerInstanceArn".to_string()),
            },
            Err(e) => Poll::Not(format!("the agent's answer was not metadata JSON: {e}")),
        },
        Ok(resp) => Poll::Not(format!("the agent answered HTTP {}", resp.status())),
        Err(e) if e.is_connect() => Poll::Not(
            "the agent's introspection port was still closed (not registered)".to_string(),
        ),
        Err(e) => Poll::Not(format!(
            "introspection request failed: {}",
            crate::aws::error_chain(&e)
        )),
    }
}

async fn poll_agent(
    spec: &JoinSpec,
    logs: &RefCell<AgentLogs>,
    deadline: Instant,
) -> Result<AgentMetadata> {
    let url = format!(
        "{}/v1/metadata",
        spec.introspection_url.trim_end_matches('/')
    );
    // The agent on localhost: no proxy, no trust store for its plain HTTP.
    let http = crate::aws::tls::local_http_client(
        &url,
        Duration::from_millis(500),
        Duration::from_secs(2),
    )?;
    // A registration that did not hold is worth saying at the timeout, whatever came after.
    let mut unsettled: Option<String> = None;
    let poll = |_| registration(&http, &url, spec, logs, deadline);
    let outcome = retry_until(
        &Backoff::fixed(POLL),
        Some(deadline),
        poll,
        |seen, _| match seen {
            Seen::Joined(meta) => Verdict::Done(meta),
            Seen::Not(why) => Verdict::Retry(Err(why)),
            Seen::Unsettled(note) => {
                unsettled = Some(note.clone());
                Verdict::Retry(Err(note))
            }
            Seen::Elsewhere(e) => Verdict::GiveUp(Ok(e)),
        },
    )
    .await;
    // The error is `Ok(error)` to give up with, `Err(why)` not registered yet.
    match outcome {
        Ok(meta) => Ok(meta),
        Err(Failed::GaveUp(Ok(e)) | Failed::Exhausted { last: Ok(e), .. }) => Err(e),
        Err(
            Failed::GaveUp(Err(last))
            | Failed::Exhausted {
                last: Err(last), ..
            },
        ) => {
            let mut logs = logs.borrow_mut();
            logs.read();
            let mut detail = vec![last.clone()];
            detail.extend(unsettled.filter(|u| *u != last));
            detail.push(logs.summary());
            detail.retain(|d| !d.is_empty());
            Err(Error::JoinTimeout {
                seconds: spec.timeout_secs,
                cluster: spec.cluster.clone(),
                last: detail.join("; "),
            })
        }
    }
}

/// One attempt: a registration in the expected cluster that holds for [`SETTLE`], or what
/// was seen instead.
async fn registration(
    http: &reqwest::Client,
    url: &str,
    spec: &JoinSpec,
    logs: &RefCell<AgentLogs>,
    deadline: Instant,
) -> Seen {
    let meta = match poll_once(http, url).await {
        Poll::Registered(meta) => meta,
        Poll::Not(why) => return Seen::Not(why),
    };
    if cluster_name(&meta.cluster) != cluster_name(&spec.cluster) {
        return Seen::Elsewhere(Error::WrongCluster {
            expected: spec.cluster.clone(),
            actual: meta.cluster,
        });
    }
    match settle(http, url, &meta, logs, deadline).await {
        Ok(()) => {
            tracing::info!(cluster = %meta.cluster, arn = meta.container_instance_arn.as_deref().unwrap_or(""), version = meta.version.as_deref().unwrap_or("?"), "ECS agent registered");
            Seen::Joined(meta)
        }
        Err(why) => {
            tracing::warn!(
                "the ECS agent registered, then {why}: not counted, waiting for it to register again"
            );
            Seen::Unsettled(format!(
                "the agent registered, then {why} within {}s",
                SETTLE.as_secs_f32()
            ))
        }
    }
}

/// The registration holds for [`SETTLE`] (cut short by the deadline): the agent keeps
/// answering with the same ARN and ecs-init logs no exit. `Err`: what happened instead.
async fn settle(
    http: &reqwest::Client,
    url: &str,
    meta: &AgentMetadata,
    logs: &RefCell<AgentLogs>,
    deadline: Instant,
) -> std::result::Result<(), String> {
    let exits = {
        let mut l = logs.borrow_mut();
        l.read();
        l.exits()
    };
    let until = (Instant::now() + SETTLE).min(deadline);
    loop {
        tokio::time::sleep(POLL).await;
        match poll_once(http, url).await {
            Poll::Registered(m) if m.container_instance_arn == meta.container_instance_arn => {}
            Poll::Registered(m) => {
                return Err(format!(
                    "answered another container instance ({})",
                    m.container_instance_arn.unwrap_or_default()
                ))
            }
            Poll::Not(why) => return Err(format!("stopped answering: {why}")),
        }
        let mut l = logs.borrow_mut();
        l.read();
        if l.exits() > exits {
            return Err(format!(
                "exited ({})",
                l.summary()
                    .split("; ")
                    .next()
                    .unwrap_or("ecs-init.log: Agent exited")
            ));
        }
        if Instant::now() >= until {
            return Ok(());
        }
    }
}

/// Returns only with a reason to stop waiting: the agent's terminal error, a failed unit, or
/// systemctl itself unusable.
async fn watch(systemctl: &Systemctl, logs: &RefCell<AgentLogs>) -> Error {
    let mut next_unit_check = Instant::now();
    loop {
        {
            let mut l = logs.borrow_mut();
            l.read();
            if let Some(e) = l.verdict(Instant::now()) {
                return e;
            }
        }
        if Instant::now() >= next_unit_check {
            next_unit_check = Instant::now() + UNIT_CHECK;
            for unit in [ECS, DOCKER] {
                match systemctl.is_failed(unit).await {
                    Ok(false) => {}
                    Ok(true) if unit == ECS => return ecs_failed(systemctl, logs).await,
                    Ok(true) => {
                        return Error::UnitFailed {
                            unit: unit.to_string(),
                            detail: "see `journalctl -u docker`".to_string(),
                        }
                    }
                    Err(e) => return e,
                }
            }
        }
        tokio::time::sleep(LOG_CHECK).await;
    }
}

/// ecs.service failed: ecs-init's exit status and what the logs say, not a guess. ecs-init exits
/// 5 when the agent exited 5 (`ecs-init/ecs-init.go:71-73`), 255 on its own failures (`:75`).
async fn ecs_failed(systemctl: &Systemctl, logs: &RefCell<AgentLogs>) -> Error {
    // ecs-init logged the agent's exit before it exited itself: read it now.
    let (terminal, summary) = {
        let mut l = logs.borrow_mut();
        l.read();
        (
            l.verdict(Instant::now() + agent_log::EXIT_GRACE),
            l.summary(),
        )
    };
    if let Some(e) = terminal {
        return e;
    }
    let status = systemctl
        .show(ECS, "ExecMainStatus")
        .await
        .ok()
        .filter(|s| !s.is_empty() && s != "0");
    let mut parts = Vec::new();
    match status.as_deref() {
        Some("5") => parts.push("ecs-init exited 5: the agent's terminal exit, which systemd does not restart (RestartPreventExitStatus=5)".to_string()),
        Some(s) => parts.push(format!("ecs-init exited {s}")),
        None => {}
    }
    if !summary.is_empty() {
        parts.push(summary);
    }
    parts.push(
        "see /var/log/ecs/ecs-agent.log, /var/log/ecs/ecs-init.log and `journalctl -u ecs`"
            .to_string(),
    );
    Error::UnitFailed {
        unit: ECS.to_string(),
        detail: parts.join("; "),
    }
}

/// The agent's word is not enough: the control plane must see the instance ACTIVE with its
/// agent connected, or tasks will not be placed on it.
pub async fn confirm_with_ecs(
    ecs: &aws_sdk_ecs::Client,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    cluster: &str,
    arn: &str,
    deadline: Instant,
) -> Result<()> {
    // Credentials first, bounded (src/aws/credentials.rs): inside the SDK call, a credentials
    // endpoint that fails would be retried attempt after attempt until the join's end.
    if let Err(e) = crate::aws::credentials::available(credentials.as_ref()).await {
        tracing::warn!(
            arn,
            error = %e,
            "no credentials for ecs:DescribeContainerInstances: not confirming with the ECS control plane that the instance is ACTIVE with its agent connected; the agent's registration in cluster '{cluster}' stands"
        );
        return Ok(());
    }
    let describe = |_| {
        ecs.describe_container_instances()
            .cluster(cluster)
            .container_instances(arn)
            .send()
    };
    let outcome = retry_until(
        &Backoff::fixed(Duration::from_secs(1)),
        Some(deadline),
        describe,
        |r, _| {
            let out = match r {
                Ok(out) => out,
                Err(e) => {
                    let message = crate::aws::describe_sdk_error(&e);
                    // The managed policy AmazonEC2ContainerServiceforEC2Role does not grant this
                    // action, so a classic instance role is refused: the agent's own answer (it
                    // registered, in this cluster) is then the whole evidence, as in the classic
                    // first-run script. A confirmation we may not ask for is no reason to fail.
                    if crate::aws::is_denied(&message) || crate::aws::no_credentials(&e) {
                        tracing::warn!(
                            arn,
                            error = %message,
                            "the instance role may not (or cannot: no credentials) call ecs:DescribeContainerInstances: not confirming with the ECS control plane that the instance is ACTIVE with its agent connected; the agent's registration in cluster '{cluster}' stands (grant that action to have it checked)"
                        );
                        return Verdict::Done(());
                    }
                    return Verdict::GiveUp(Error::Aws {
                        api: "ecs:DescribeContainerInstances",
                        message,
                    });
                }
            };
            let detail = match out.container_instances().first() {
                Some(ci) => {
                    let status = ci.status().unwrap_or("UNKNOWN");
                    if status == "ACTIVE" && ci.agent_connected() {
                        tracing::info!(
                            arn,
                            "ECS reports the container instance ACTIVE and its agent connected"
                        );
                        return Verdict::Done(());
                    }
                    format!("status {status}, agentConnected {}", ci.agent_connected())
                }
                None => out
                    .failures()
                    .first()
                    .map(|f| {
                        format!(
                            "ECS answered {}: {}",
                            f.reason().unwrap_or("no reason"),
                            f.detail().unwrap_or("")
                        )
                    })
                    .unwrap_or_else(|| "ECS does not know the container instance".into()),
            };
            Verdict::Retry(Error::NotHealthy {
                arn: arn.to_string(),
                detail,
            })
        },
    )
    .await;
    outcome.map_err(|f| match f {
        Failed::GaveUp(e) | Failed::Exhausted { last: e, .. } => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_from_arns() {
        assert_eq!(cluster_name("prod"), "prod");
        assert_eq!(cluster_name("arn:aws:ecs:eu-west-1:1:cluster/prod"), "prod");
    }

    #[test]
    fn metadata_arn_is_optional() {
        let m: AgentMetadata = serde_json::from_str(r#"{"Cluster":"c","Version":"v"}"#).unwrap();
        assert_eq!(m.container_instance_arn, None);
    }
}
