//! Before the services start: is the cluster there, and ACTIVE? (ecs:DescribeClusters)
//!
//! Why ask at all: the agent's own answer to a missing cluster is not something systemd sees.
//! It logs `Received terminal error from RegisterContainerInstance call, exiting` and exits 1
//! (`ecs-agent/api/ecs/client/ecs_client.go:262-270@8dfceca6`, `agent/app/agent.go:509-510`),
//! and ecs-init restarts it inside its own process forever (`ecs-init/engine/engine.go:293-340`):
//! `ecs.service` stays active (shared reference.md §4). The log watch (agent_log.rs) catches that
//! within seconds of the start; this check catches it before anything is started, with the fix.
//!
//! Why it may not stop a good boot: the classic instance role (the AWS managed
//! `AmazonEC2ContainerServiceforEC2Role`) does not grant ecs:DescribeClusters (reference.md §4,
//! "IAM"). A refusal, missing credentials, or any other error that is not an answer about the
//! cluster is one warning, and the boot goes on: only ECS saying "MISSING" or a status other
//! than ACTIVE fails it.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;

use crate::error::{Error, Result};

/// The check exists to save time: it never holds the boot up for long. A throttled or slow
/// ECS is retried by the SDK within this, then the boot goes on without the answer.
pub const BUDGET: Duration = Duration::from_secs(20);

const LOST: &str = "a missing or INACTIVE cluster is then seen only from the agent's own log (its ClusterNotFoundException), not before the services start; grant ecs:DescribeClusters to have it checked first";

/// What ECS said about the cluster, reduced to what the boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Active,
    /// Not ACTIVE: `Some(status)` (INACTIVE: deleted; PROVISIONING, ...), `None`: unknown.
    NotActive(Option<String>),
}

/// `Ok(())` when the cluster is ACTIVE or the question could not be answered (warned);
/// [`Error::ClusterNotActive`] when ECS says it is missing or not ACTIVE.
pub async fn check(
    ecs: &aws_sdk_ecs::Client,
    credentials: Option<SharedCredentialsProvider>,
    cluster: &str,
    region: &str,
) -> Result<()> {
    match tokio::time::timeout(BUDGET, ask(ecs, credentials, cluster)).await {
        Ok(Ok(Some(Answer::Active))) => {
            tracing::info!(
                cluster,
                region,
                "ECS cluster is ACTIVE (ecs:DescribeClusters)"
            );
            Ok(())
        }
        Ok(Ok(Some(Answer::NotActive(status)))) => Err(Error::ClusterNotActive {
            cluster: cluster.to_string(),
            region: region.to_string(),
            status,
        }),
        // Warned already (denied, no credentials, another error).
        Ok(Ok(None)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(cluster, error = %e, "ecs:DescribeClusters failed: not checking that the cluster exists before starting the services; {LOST}");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(cluster, budget_secs = BUDGET.as_secs(), "ecs:DescribeClusters did not answer in time: not checking that the cluster exists before starting the services; {LOST}");
            Ok(())
        }
    }
}

/// `Ok(None)`: not answerable here, one warning logged.
async fn ask(
    ecs: &aws_sdk_ecs::Client,
    credentials: Option<SharedCredentialsProvider>,
    cluster: &str,
) -> Result<Option<Answer>> {
    // Credentials first (as in join::confirm_with_ecs): inside the SDK call a failing
    // credentials endpoint would be retried attempt after attempt.
    if let Err(e) = crate::aws::credentials::available(credentials.as_ref()).await {
        tracing::warn!(cluster, error = %e, "no credentials for ecs:DescribeClusters: {LOST}");
        return Ok(None);
    }
    match ecs.describe_clusters().clusters(cluster).send().await {
        Ok(out) => Ok(Some(answer(
            out.clusters()
                .iter()
                .map(|c| c.status().unwrap_or("").to_string())
                .next(),
        ))),
        Err(e) => {
            let message = crate::aws::describe_sdk_error(&e);
            if crate::aws::is_denied(&message) || crate::aws::no_credentials(&e) {
                tracing::warn!(cluster, error = %message, "the instance role may not (or cannot: no credentials) call ecs:DescribeClusters (AmazonEC2ContainerServiceforEC2Role does not grant it): {LOST}");
                return Ok(None);
            }
            Err(Error::Aws {
                api: "ecs:DescribeClusters",
                message,
            })
        }
    }
}

/// The first cluster's status; none at all is ECS's `failures: [{reason: MISSING}]`.
fn answer(status: Option<String>) -> Answer {
    match status {
        Some(s) if s == "ACTIVE" => Answer::Active,
        Some(s) if !s.is_empty() => Answer::NotActive(Some(s)),
        _ => Answer::NotActive(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(answer(Some("ACTIVE".into())), Answer::Active);
        assert_eq!(
            answer(Some("INACTIVE".into())),
            Answer::NotActive(Some("INACTIVE".into()))
        );
        assert_eq!(answer(None), Answer::NotActive(None));
    }

    #[test]
    fn the_failure_names_cluster_region_and_fix() {
        let e = Error::ClusterNotActive {
            cluster: "prod".into(),
            region: "eu-west-1".into(),
            status: None,
        }
        .to_string();
        for word in [
            "'prod'",
            "does not exist",
            "eu-west-1",
            "create the cluster",
        ] {
            assert!(e.contains(word), "{word}: {e}");
        }
        let e = Error::ClusterNotActive {
            cluster: "prod".into(),
            region: "eu-west-1".into(),
            status: Some("INACTIVE".into()),
        }
        .to_string();
        assert!(e.contains("is INACTIVE"), "{e}");
    }
}
