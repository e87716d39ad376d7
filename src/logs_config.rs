//! Step 3b: the CloudWatch agent's log collection, in the unified agent's schema.
//!
//! Written as a fragment into `amazon-cloudwatch-agent.d/`: the agent merges that directory at
//! every start, and `-a fetch-config` deletes the main `amazon-cloudwatch-agent.json`, so the
//! fragment survives other tooling.

use serde_json::{json, Value};

use crate::settings::{LogFile, Logs};

pub const PATH: &str =
    "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/ecs-bootstrap.json";
pub const UNIT: &str = "amazon-cloudwatch-agent.service";

/// The classic ECS container instance set (what the first-run script shipped with awslogs).
const DEFAULT_FILES: &[(&str, Option<&str>, &str)] = &[
    ("/var/log/dmesg", None, "Local"),
    ("/var/log/messages", Some("%b %d %H:%M:%S"), "Local"),
    ("/var/log/docker", Some("%Y-%m-%dT%H:%M:%S.%f"), "UTC"),
    (
        "/var/log/ecs/ecs-init.log*",
        Some("%Y-%m-%dT%H:%M:%SZ"),
        "UTC",
    ),
    (
        "/var/log/ecs/ecs-agent.log*",
        Some("%Y-%m-%dT%H:%M:%SZ"),
        "UTC",
    ),
    ("/var/log/ecs/audit.log*", Some("%Y-%m-%dT%H:%M:%SZ"), "UTC"),
];

/// `<stack>/ec2/<signal resource>`: the group layout of the classic stack.
pub fn default_prefix(stack: &str, signal_resource: &str) -> String {
    format!("{stack}/ec2/{signal_resource}")
}

/// `None` when logs are disabled.
pub fn render(logs: &Logs, default_group_prefix: &str) -> Option<String> {
    if !logs.enabled {
        return None;
    }
    let prefix = logs.group_prefix.as_deref().unwrap_or(default_group_prefix);
    let defaults = DEFAULT_FILES.iter().map(|(path, ts, tz)| LogFile {
        path: path.to_string(),
        group_name: None,
        timestamp_format: ts.map(str::to_string),
        timezone: Some(tz.to_string()),
    });
    let collect: Vec<Value> = defaults
        .chain(logs.extra_files.iter().cloned())
        .map(|f| entry(&f, prefix, logs.retention_in_days))
        .collect();
    let doc = json!({
        "logs": { "logs_collected": { "files": { "collect_list": collect } } }
    });
    Some(serde_json::to_string_pretty(&doc).expect("a JSON value always serialises") + "\n")
}

fn entry(f: &LogFile, prefix: &str, retention: Option<u32>) -> Value {
    // The group is named after the file, without the rotation glob: ecs-agent.log* ->
    // <prefix>/var/log/ecs/ecs-agent.log.
    let group = f
        .group_name
        .clone()
        .unwrap_or_else(|| format!("{prefix}{}", f.path.trim_end_matches('*')));
    let mut e = json!({
        "file_path": f.path,
        "log_group_name": group,
        "log_stream_name": "{instance_id}",
        "timezone": f.timezone.clone().unwrap_or_else(|| "UTC".into()),
    });
    if let Some(ts) = &f.timestamp_format {
        e["timestamp_format"] = json!(ts);
    }
    if let Some(days) = retention {
        e["retention_in_days"] = json!(days);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> Logs {
        Logs {
            enabled: true,
            explicit: false,
            group_prefix: None,
            retention_in_days: None,
            extra_files: vec![],
        }
    }

    #[test]
    fn default_set() {
        let text = render(&logs(), &default_prefix("todo", "ApplicationAutoscaling")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let list = v["logs"]["logs_collected"]["files"]["collect_list"]
            .as_array()
            .unwrap();
        let paths: Vec<&str> = list
            .iter()
            .map(|e| e["file_path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/var/log/dmesg",
                "/var/log/messages",
                "/var/log/docker",
                "/var/log/ecs/ecs-init.log*",
                "/var/log/ecs/ecs-agent.log*",
                "/var/log/ecs/audit.log*"
            ]
        );
        assert_eq!(
            list[4]["log_group_name"],
            "todo/ec2/ApplicationAutoscaling/var/log/ecs/ecs-agent.log"
        );
        assert_eq!(list[4]["log_stream_name"], "{instance_id}");
        assert_eq!(list[4]["timestamp_format"], "%Y-%m-%dT%H:%M:%SZ");
        assert_eq!(list[4]["timezone"], "UTC");
        assert!(list[0].get("timestamp_format").is_none());
    }

    #[test]
    fn prefix_extra_files_retention_and_disabled() {
        let mut l = logs();
        l.group_prefix = Some("p".into());
        l.retention_in_days = Some(14);
        l.extra_files.push(LogFile {
            path: "/var/log/app/*.log".into(),
            group_name: Some("app".into()),
            timestamp_format: None,
            timezone: None,
        });
        let v: Value = serde_json::from_str(&render(&l, "unused").unwrap()).unwrap();
        let list = v["logs"]["logs_collected"]["files"]["collect_list"]
            .as_array()
            .unwrap();
        assert_eq!(list.len(), 7);
        assert_eq!(list[0]["log_group_name"], "p/var/log/dmesg");
        assert_eq!(list[6]["log_group_name"], "app");
        assert_eq!(list[6]["retention_in_days"], 14);
        l.enabled = false;
        assert!(render(&l, "x").is_none());
    }
}
