//! Step 5: wait until the ECS agent says this instance is registered in the expected cluster,
//! then confirm it from the control plane.
//!
//! The agent opens its introspection port only after registering, so "connection refused" just
//! means "not yet". A unit that has failed will never get there (the agent exits 5 on a terminal
//! registration error and systemd does not restart it), so the units are watched while waiting
//! and a failure ends the wait at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::services::{Systemctl, DOCKER, ECS};

/// Short enough that the join is seen well within 250 ms of the agent answering.
const POLL: Duration = Duration::from_millis(100);
/// Spawning systemctl is not free; the units are checked less often than the port.
const UNIT_CHECK: Duration = Duration::from_millis(500);

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

pub async fn wait_for_agent(
    spec: &JoinSpec,
    systemctl: &Systemctl,
    deadline: Instant,
) -> Result<AgentMetadata> {
    // The two run side by side so a slow `systemctl` never delays seeing the join.
    tokio::select! {
        r = poll_agent(spec, deadline) => r,
        e = watch_units(systemctl) => Err(e),
    }
}

async fn poll_agent(spec: &JoinSpec, deadline: Instant) -> Result<AgentMetadata> {
    let url = format!(
        "{}/v1/metadata",
        spec.introspection_url.trim_end_matches('/')
    );
    // Never through a proxy: this is the agent on localhost, whatever HTTP_PROXY says.
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| Error::Io {
            op: "build HTTP client for",
            path: url.clone().into(),
            source: std::io::Error::other(e),
        })?;
    loop {
        let last = match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json::<AgentMetadata>().await {
                Ok(meta) => match meta.container_instance_arn.as_deref() {
                    Some(arn) if !arn.is_empty() => {
                        if cluster_name(&meta.cluster) != cluster_name(&spec.cluster) {
                            return Err(Error::WrongCluster {
                                expected: spec.cluster.clone(),
                                actual: meta.cluster,
                            });
                        }
                        tracing::info!(cluster = %meta.cluster, arn, version = meta.version.as_deref().unwrap_or("?"), "ECS agent registered");
                        return Ok(meta);
                    }
                    _ => "the agent answered without a ContainerInstanceArn".to_string(),
                },
                Err(e) => format!("the agent's answer was not metadata JSON: {e}"),
            },
            Ok(resp) => format!("the agent answered HTTP {}", resp.status()),
            Err(e) if e.is_connect() => {
                "the agent's introspection port was still closed (not registered)".to_string()
            }
            Err(e) => format!(
                "introspection request failed: {}",
                crate::aws::error_chain(&e)
            ),
        };
        if Instant::now() >= deadline {
            return Err(Error::JoinTimeout {
                seconds: spec.timeout_secs,
                cluster: spec.cluster.clone(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Returns only when a unit has failed (or systemctl itself cannot be asked).
async fn watch_units(systemctl: &Systemctl) -> Error {
    loop {
        for unit in [ECS, DOCKER] {
            match systemctl.is_failed(unit).await {
                Ok(false) => {}
                Ok(true) => {
                    let detail = if unit == ECS {
                        "the ECS agent exited and systemd will not restart it (exit code 5 is a terminal registration error: check the cluster name, that the cluster exists and the instance role); see `journalctl -u ecs` and /var/log/ecs/ecs-agent.log"
                    } else {
                        "see `journalctl -u docker`"
                    };
                    return Error::UnitFailed {
                        unit: unit.to_string(),
                        detail: detail.to_string(),
                    };
                }
                Err(e) => return e,
            }
        }
        tokio::time::sleep(UNIT_CHECK).await;
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
    if let Some(provider) = credentials {
        use aws_credential_types::provider::ProvideCredentials;
        if let Err(e) = provider.provide_credentials().await {
            tracing::warn!(
                arn,
                error = %crate::aws::error_chain(&e),
                "no credentials for ecs:DescribeContainerInstances: not confirming with the ECS control plane that the instance is ACTIVE with its agent connected; the agent's registration in cluster '{cluster}' stands"
            );
            return Ok(());
        }
    }
    loop {
        let out = match ecs
            .describe_container_instances()
            .cluster(cluster)
            .container_instances(arn)
            .send()
            .await
        {
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
                    return Ok(());
                }
                return Err(Error::Aws {
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
                    return Ok(());
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
        if Instant::now() >= deadline {
            return Err(Error::NotHealthy {
                arn: arn.to_string(),
                detail,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
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
