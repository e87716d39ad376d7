//! Which `AgentConfig` keys may go into ecs.config.
//!
//! ecs-init accepts any key and the agent ignores the ones it does not know, so a misspelt key is
//! silently lost on every instance of the fleet. Keys close to a known one are therefore refused
//! with a suggestion; keys that look like agent settings but are not in this list (newer agent
//! versions add settings) are accepted with a warning.

use crate::error::{Error, Result};

/// Settings documented in the amazon-ecs-agent README (Linux).
pub const KNOWN: &[&str] = &[
    "AWS_DEFAULT_REGION",
    "DOCKER_HOST",
    "ECS_AGENT_HEALTHCHECK_HOST",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
    "ECS_APPARMOR_CAPABLE",
    "ECS_AUDIT_LOGFILE",
    "ECS_AUDIT_LOGFILE_DISABLED",
    "ECS_AVAILABLE_LOGGING_DRIVERS",
    "ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES",
    "ECS_AWSVPC_BLOCK_IMDS",
    "ECS_BACKEND_HOST",
    "ECS_CGROUP_CPU_PERIOD",
    "ECS_CGROUP_PATH",
    "ECS_CHECKPOINT",
    "ECS_CNI_PLUGINS_PATH",
    "ECS_CONTAINER_CREATE_TIMEOUT",
    "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM",
    "ECS_CONTAINER_INSTANCE_TAGS",
    "ECS_CONTAINER_START_TIMEOUT",
    "ECS_CONTAINER_STOP_TIMEOUT",
    "ECS_DATADIR",
    "ECS_DISABLE_DOCKER_HEALTH_CHECK",
    "ECS_DISABLE_IMAGE_CLEANUP",
    "ECS_DISABLE_METRICS",
    "ECS_DISABLE_PRIVILEGED",
    "ECS_DYNAMIC_HOST_PORT_RANGE",
    "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE",
    "ECS_ENABLE_CONTAINER_METADATA",
    "ECS_ENABLE_GPU_SUPPORT",
    "ECS_ENABLE_HIGH_DENSITY_ENI",
    "ECS_ENABLE_IPV6",
    "ECS_ENABLE_RUNTIME_STATS",
    "ECS_ENABLE_SPOT_INSTANCE_DRAINING",
    "ECS_ENABLE_TASK_CPU_MEM_LIMIT",
    "ECS_ENABLE_TASK_ENI",
    "ECS_ENABLE_TASK_IAM_ROLE",
    "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST",
    "ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP",
    "ECS_ENGINE_AUTH_DATA",
    "ECS_ENGINE_AUTH_TYPE",
    "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
    "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER",
    "ECS_EXCLUDE_IPV6_PORTBINDING",
    "ECS_EXCLUDE_UNTRACKED_IMAGE",
    "ECS_FSX_WINDOWS_FILE_SERVER_SUPPORTED",
    "ECS_HOST_DATA_DIR",
    "ECS_IMAGE_CLEANUP_INTERVAL",
    "ECS_IMAGE_MINIMUM_CLEANUP_AGE",
    "ECS_IMAGE_PULL_BEHAVIOR",
    "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
    "ECS_IMAGE_PULL_TIMEOUT",
    "ECS_INSTANCE_ATTRIBUTES",
    "ECS_LOG_DRIVER",
    "ECS_LOG_MAX_FILE_SIZE_MB",
    "ECS_LOG_MAX_ROLL_COUNT",
    "ECS_LOG_OPTS",
    "ECS_LOG_OUTPUT_FORMAT",
    "ECS_LOG_ROLLOVER_TYPE",
    "ECS_LOGFILE",
    "ECS_LOGLEVEL",
    "ECS_LOGLEVEL_ON_INSTANCE",
    "ECS_NUM_IMAGES_DELETE_PER_CYCLE",
    "ECS_NVIDIA_RUNTIME",
    "ECS_OFFHOST_INTROSPECTION_INTERFACE_NAME",
    "ECS_POLL_METRICS",
    "ECS_POLLING_METRICS_WAIT_DURATION",
    "ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT",
    "ECS_RESERVED_MEMORY",
    "ECS_RESERVED_PORTS",
    "ECS_RESERVED_PORTS_UDP",
    "ECS_SELINUX_CAPABLE",
    "ECS_SHARED_VOLUME_MATCH_FULL_CONFIG",
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
    "ECS_TASK_METADATA_RPS_LIMIT",
    "ECS_TASK_PIDS_LIMIT",
    "ECS_UPDATE_DOWNLOAD_DIR",
    "ECS_UPDATES_ENABLED",
    "ECS_VOLUME_PLUGIN_CAPABILITIES",
    "ECS_WARM_POOLS_CHECK",
    "NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE",
];

/// Keys that hold credentials: never logged, and the file holding them is 0600.
pub const SECRET: &[&str] = &[
    "ECS_ENGINE_AUTH_DATA",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Keys set from other parts of the block: two sources for one key would be ambiguous.
const OWNED: &[(&str, &str)] = &[
    ("ECS_CLUSTER", "Cluster"),
    ("HTTP_PROXY", "Proxy"),
    ("HTTPS_PROXY", "Proxy"),
    ("NO_PROXY", "Proxy"),
];

pub fn is_secret(key: &str) -> bool {
    SECRET.contains(&key)
}

pub fn validate(key: &str, path: &str) -> Result<()> {
    if let Some((_, owner)) = OWNED.iter().find(|(k, _)| *k == key) {
        return Err(Error::invalid(
            path,
            format!("{key} is set from ecs-bootstrap.{owner}, not AgentConfig"),
        ));
    }
    let well_formed = key.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(Error::invalid(
            path,
            format!("'{key}' is not an ECS agent setting name (upper case, digits and '_', like ECS_LOGLEVEL)"),
        ));
    }
    if KNOWN.contains(&key) {
        return Ok(());
    }
    if let Some(near) = crate::settings::closest(key, KNOWN.iter().copied()) {
        return Err(Error::invalid(
            path,
            format!("'{key}' is not an ECS agent setting; did you mean '{near}'?"),
        ));
    }
    if !key.starts_with("ECS_") {
        return Err(Error::invalid(
            path,
            format!("'{key}' is not an ECS agent setting (they start with ECS_)"),
        ));
    }
    tracing::warn!(
        key,
        "not a setting this version of ecs-bootstrap knows; writing it as given"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_unknown_and_typos() {
        assert!(validate("ECS_LOGLEVEL", "p").is_ok());
        assert!(validate("ECS_SOME_FUTURE_SETTING_XYZ", "p").is_ok());
        let e = validate("ECS_ENABLE_CONTAINER_METADAT", "a.b")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.b:") && e.contains("ECS_ENABLE_CONTAINER_METADATA"),
            "{e}"
        );
        assert!(validate("ecs_loglevel", "p")
            .unwrap_err()
            .to_string()
            .contains("not an ECS agent setting name"));
        assert!(validate("ECS LOGLEVEL", "p").is_err());
        assert!(validate("ECS_CLUSTER", "p")
            .unwrap_err()
            .to_string()
            .contains("ecs-bootstrap.Cluster"));
        assert!(validate("HTTP_PROXY", "p")
            .unwrap_err()
            .to_string()
            .contains("Proxy"));
        assert!(validate("FOO", "p")
            .unwrap_err()
            .to_string()
            .contains("start with ECS_"));
    }
}
