//! Which `AgentConfig` keys may go into ecs.config.
//!
//! ecs-init accepts any key and the agent ignores the ones it does not know, so a misspelt key is
//! silently lost on every instance of the fleet. Keys close to a known one are therefore refused
//! with a suggestion; keys that look like agent settings but are not in this list (newer agent
//! versions add settings) are accepted with a warning.
//!
//! The list is the agent's own: every variable the Linux agent and ecs-init read, from
//! `../shared/conformance/ecs-agent-settings.tsv` (amazon-ecs-agent at 8dfceca6), less what its
//! README says is not a setting. A unit test fails when the two drift.

use crate::error::{Error, Result};

/// Every name the Linux ECS agent or ecs-init reads as a setting (`ECS_CLUSTER` and the proxy
/// variables are set from `Cluster`/`Proxy`, see [`OWNED`]).
pub const KNOWN: &[&str] = &[
    "AWS_DEFAULT_REGION",
    "CREDENTIALS_FETCHER_HOST",
    "CREDENTIALS_FETCHER_HOST_DIR",
    "CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA",
    "DOCKER_HOST",
    "ECS_AGENT_APPARMOR_PROFILE",
    "ECS_AGENT_CONFIG_FILE_PATH",
    "ECS_AGENT_HEALTHCHECK_HOST",
    "ECS_AGENT_LABELS",
    "ECS_AGENT_PID_NAMESPACE_HOST",
    "ECS_AGENT_RUN_PRIVILEGED",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
    "ECS_ALTERNATE_CREDENTIAL_PROFILE",
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
    "ECS_DETAILED_OS_FAMILY",
    "ECS_DISABLE_DOCKER_HEALTH_CHECK",
    "ECS_DISABLE_IMAGE_CLEANUP",
    "ECS_DISABLE_METRICS",
    "ECS_DISABLE_PRIVILEGED",
    "ECS_DISABLE_TASK_METADATA_AZ",
    "ECS_DOMAIN_JOINED_LINUX_INSTANCE",
    "ECS_DYNAMIC_HOST_PORT_RANGE",
    "ECS_EBSTA_SUPPORTED",
    "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE",
    "ECS_ENABLE_CONTAINER_METADATA",
    "ECS_ENABLE_FIRELENS_ASYNC",
    "ECS_ENABLE_GPU_SUPPORT",
    "ECS_ENABLE_HIGH_DENSITY_ENI",
    "ECS_ENABLE_INF_SUPPORT",
    "ECS_ENABLE_PROMETHEUS_METRICS",
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
    "ECS_EXTERNAL",
    "ECS_GMSA_SUPPORTED",
    "ECS_HOST_DATA_DIR",
    "ECS_IMAGE_CLEANUP_INTERVAL",
    "ECS_IMAGE_MINIMUM_CLEANUP_AGE",
    "ECS_IMAGE_PULL_BEHAVIOR",
    "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
    "ECS_IMAGE_PULL_TIMEOUT",
    "ECS_INIT_DOCKER_LOG_FILE_NUM",
    "ECS_INIT_DOCKER_LOG_FILE_SIZE",
    "ECS_INSTANCE_ATTRIBUTES",
    "ECS_INSTANCE_IP_COMPATIBILITY",
    "ECS_LOGFILE",
    "ECS_LOGLEVEL",
    "ECS_LOGLEVEL_ON_INSTANCE",
    "ECS_LOG_DRIVER",
    "ECS_LOG_MAX_FILE_SIZE_MB",
    "ECS_LOG_MAX_ROLL_COUNT",
    "ECS_LOG_OPTS",
    "ECS_LOG_OUTPUT_FORMAT",
    "ECS_LOG_ROLLOVER_TYPE",
    "ECS_MANIFEST_PULL_TIMEOUT",
    "ECS_NUM_IMAGES_DELETE_PER_CYCLE",
    "ECS_NVIDIA_RUNTIME",
    "ECS_PAUSE_LABELS",
    "ECS_POLLING_METRICS_WAIT_DURATION",
    "ECS_POLL_METRICS",
    "ECS_PROPAGATE_TASK_MEMORY_LIMIT_CGROUPV2",
    "ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT",
    "ECS_RESERVED_MEMORY",
    "ECS_RESERVED_PORTS",
    "ECS_RESERVED_PORTS_UDP",
    "ECS_SELINUX_CAPABLE",
    "ECS_SHARED_VOLUME_MATCH_FULL_CONFIG",
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
    "ECS_TASK_METADATA_RPS_LIMIT",
    "ECS_TASK_PIDS_LIMIT",
    "ECS_UPDATES_ENABLED",
    "ECS_UPDATE_DOWNLOAD_DIR",
    "ECS_VOLUME_PLUGIN_CAPABILITIES",
    "ECS_WARM_POOLS_CHECK",
    "NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE",
    "NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE",
];

/// Read by the agent, but not settings (`../shared/conformance/README.md`): refused, with why.
const NOT_SETTINGS: &[(&str, &str)] = &[
    (
        "PATH",
        "the agent appends its own PATH to the CNI plugin search path (ecs-agent/netlib/model/ecscni/client.go:81@8dfceca6); a PATH line would replace the agent container's PATH",
    ),
    (
        "REQUEST_METHOD",
        "Go's CGI detection: when it is set the agent refuses to use HTTP_PROXY (ecs-agent/utils/httpproxy/proxy.go:136-138@8dfceca6)",
    ),
];

/// ecs-init sets these itself in the agent container (`ecs-init/docker/docker.go:314-351@8dfceca6`):
/// the four paths are bind mounts from the host, the others are computed. A value from
/// ecs.config replaces ecs-init's: allowed, but said.
const ECS_INIT_OWN: &[&str] = &[
    "ECS_LOGFILE",
    "ECS_DATADIR",
    "ECS_AGENT_CONFIG_FILE_PATH",
    "ECS_UPDATE_DOWNLOAD_DIR",
    "ECS_DETAILED_OS_FAMILY",
    "CREDENTIALS_FETCHER_HOST_DIR",
    "ECS_DOMAIN_JOINED_LINUX_INSTANCE",
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
    if let Some((_, why)) = NOT_SETTINGS.iter().find(|(k, _)| *k == key) {
        return Err(Error::invalid(
            path,
            format!("{key} is read by the ECS agent but is not a setting: {why}"),
        ));
    }
    if key.starts_with("ZZZ_") {
        return Err(Error::invalid(
            path,
            format!("{key} is one of the agent's test switches, not supported in production"),
        ));
    }
    if KNOWN.contains(&key) {
        if ECS_INIT_OWN.contains(&key) {
            tracing::warn!(
                key,
                "ecs-init sets this itself in the agent container (a path it mounts from the host, or a value it computes); the ecs.config value replaces it"
            );
        }
        return Ok(());
    }
    if let Some(near) = crate::input::closest(key, KNOWN.iter().copied()) {
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
pub(crate) mod tests {
    use super::*;

    /// The rows of `../shared/conformance/ecs-agent-settings.tsv`: (name, read by, OS).
    pub(crate) fn conformance_rows() -> Vec<(String, String, String)> {
        let tsv = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/conformance/ecs-agent-settings.tsv"
        );
        let text = std::fs::read_to_string(tsv)
            .unwrap_or_else(|e| panic!("{tsv}: {e} (the shared/ conformance data is needed)"));
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                (
                    c[0].into(),
                    c[1].into(),
                    c.get(2).copied().unwrap_or("").into(),
                )
            })
            .collect()
    }

    /// KNOWN is the agent's list: the Linux rows of the conformance TSV, less the names its
    /// README says are not settings, and the names set from `Cluster`/`Proxy`.
    #[test]
    fn known_is_the_agents_own_list() {
        let rows = conformance_rows();
        let mut from_tsv: Vec<&str> = rows
            .iter()
            .filter(|(_, _, os)| os == "linux")
            .map(|(k, _, _)| k.as_str())
            .filter(|k| {
                !NOT_SETTINGS.iter().any(|(n, _)| n == k)
                    && !k.starts_with("ZZZ_")
                    && !OWNED.iter().any(|(n, _)| n == k)
            })
            .collect();
        from_tsv.sort_unstable();
        from_tsv.dedup();
        let mut known = KNOWN.to_vec();
        known.sort_unstable();
        assert_eq!(
            known, from_tsv,
            "src/agent_keys.rs KNOWN drifted from the conformance TSV"
        );
        for k in ECS_INIT_OWN {
            assert!(KNOWN.contains(k), "{k}");
        }
    }

    #[test]
    fn the_agents_settings_are_accepted_and_non_settings_refused() {
        for key in [
            "ECS_ENABLE_INF_SUPPORT",
            "CREDENTIALS_FETCHER_HOST",
            "NONECS_NUM_CONTAINERS_DELETE_PER_CYCLE",
            "ECS_GMSA_SUPPORTED",
            "ECS_AGENT_LABELS",
            "ECS_MANIFEST_PULL_TIMEOUT",
            "ECS_DATADIR",
        ] {
            assert!(validate(key, "p").is_ok(), "{key}");
        }
        for (key, why) in [
            ("PATH", "not a setting"),
            ("REQUEST_METHOD", "HTTP_PROXY"),
            (
                "ZZZ_SKIP_DOMAIN_JOIN_CHECK_NOT_SUPPORTED_IN_PRODUCTION",
                "test switches",
            ),
        ] {
            let e = validate(key, "a.b").unwrap_err().to_string();
            assert!(e.starts_with("a.b:") && e.contains(why), "{e}");
        }
    }

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
