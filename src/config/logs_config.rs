//! Step 3b: the CloudWatch agent's log collection, in the unified agent's schema.
//!
//! Written as a fragment into `amazon-cloudwatch-agent.d/`: the agent merges every file of that
//! directory at start (`start-amazon-cloudwatch-agent` runs config-translator over it: collect_list
//! entries appended, identical entries dropped, then the merged document checked against its
//! schema, `translator/jsonconfig/mergeJsonUtil/util.go:74-92@ab55b8da`). So the fragment must be
//! valid on its own and together with others: it is checked here against the schema's rules for
//! what we write (`translator/config/schema.json@ab55b8da`, in `../shared/conformance/`; the
//! test suite validates the whole rendered document against that schema), identical entries are
//! dropped, and group names follow CloudWatch Logs' own rules, which the schema does not check.
//!
//! `amazon-cloudwatch-agent-ctl -a fetch-config` **deletes** every file of the `.d/` directory,
//! ours included (`packaging/dependencies/amazon-cloudwatch-agent-ctl:342-351@ab55b8da`), and
//! so does `-a start` on an agent that was never configured (`:108-110`); `-a append-config`
//! keeps it. docs/ecs-bootstrap-block.md ("Logs") says so.

use serde_json::{json, Value};

use crate::config::settings::{LogFile, Logs};
use crate::error::{Error, Result};

/// The schema's `logGroupNameDefinition`/`logStreamNameDefinition` maximum, and CloudWatch Logs'.
const MAX_NAME: usize = 512;
/// The schema's `file_path` maximum.
const MAX_PATH: usize = 4096;

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

/// `None` when logs are disabled; an error naming the entry when a name would not be accepted
/// by the agent's schema or by CloudWatch Logs.
pub fn render(logs: &Logs, default_group_prefix: &str) -> Result<Option<String>> {
    if !logs.enabled {
        return Ok(None);
    }
    let prefix = logs.group_prefix.as_deref().unwrap_or(default_group_prefix);
    let defaults = DEFAULT_FILES.iter().map(|(path, ts, tz)| LogFile {
        path: path.to_string(),
        group_name: None,
        timestamp_format: ts.map(str::to_string),
        timezone: Some(tz.to_string()),
    });
    let mut collect: Vec<Value> = Vec::new();
    for (i, f) in defaults.chain(logs.extra_files.iter().cloned()).enumerate() {
        let e = entry(&f, prefix, logs.retention_in_days);
        let where_ = if i < DEFAULT_FILES.len() {
            format!(
                "{}.Logs (the default entry for {})",
                crate::config::settings::BLOCK,
                f.path
            )
        } else {
            format!(
                "{}.Logs.Files[{}]",
                crate::config::settings::BLOCK,
                i - DEFAULT_FILES.len()
            )
        };
        check_entry(&e, &where_)?;
        // The schema wants unique items; the agent's merge drops identical ones anyway.
        if !collect.contains(&e) {
            collect.push(e);
        }
    }
    let doc = json!({
        "logs": { "logs_collected": { "files": { "collect_list": collect } } }
    });
    Ok(Some(
        serde_json::to_string_pretty(&doc).expect("a JSON value always serialises") + "\n",
    ))
}

fn check_entry(e: &Value, path: &str) -> Result<()> {
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let group = text("log_group_name");
    let file = text("file_path");
    if file.is_empty() || file.len() > MAX_PATH {
        return Err(Error::invalid(
            path,
            format!("the file path must be 1-{MAX_PATH} characters"),
        ));
    }
    // Placeholders (`<stack-name>`) stand in for real names in a dry run.
    let placeholder = group.contains('<');
    let n = group.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(Error::invalid(
            path,
            format!("the log group name '{group}' has {n} characters: CloudWatch Logs (and the agent's schema) allow 1-{MAX_NAME}; shorten GroupPrefix or set GroupName"),
        ));
    }
    // CreateLogGroup: `[\.\-_/#A-Za-z0-9]+`, not starting with `aws/` (reserved for AWS).
    if let Some(bad) = group.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || "_-/.#".contains(*c) || (placeholder && "<>".contains(*c)))
    }) {
        return Err(Error::invalid(
            path,
            format!("the log group name '{group}' has '{bad}': CloudWatch Logs allows letters, digits and _ - / . #"),
        ));
    }
    if group.starts_with("aws/") {
        return Err(Error::invalid(
            path,
            format!("the log group name '{group}' starts with 'aws/', which CloudWatch Logs reserves for AWS services"),
        ));
    }
    Ok(())
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
        let text = render(&logs(), &default_prefix("todo", "ApplicationAutoscaling"))
            .unwrap()
            .unwrap();
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
        let v: Value = serde_json::from_str(&render(&l, "unused").unwrap().unwrap()).unwrap();
        let list = v["logs"]["logs_collected"]["files"]["collect_list"]
            .as_array()
            .unwrap();
        assert_eq!(list.len(), 7);
        assert_eq!(list[0]["log_group_name"], "p/var/log/dmesg");
        assert_eq!(list[6]["log_group_name"], "app");
        assert_eq!(list[6]["retention_in_days"], 14);
        l.enabled = false;
        assert!(render(&l, "x").unwrap().is_none());
    }

    #[test]
    fn names_cloudwatch_refuses_are_refused_and_duplicates_dropped() {
        let mut l = logs();
        l.group_prefix = Some("p".repeat(500));
        let e = render(&l, "x").unwrap_err().to_string();
        assert!(
            e.contains("ecs-bootstrap.Logs") && e.contains("1-512"),
            "{e}"
        );
        l.group_prefix = Some("aws/ecs".into());
        assert!(render(&l, "x")
            .unwrap_err()
            .to_string()
            .contains("reserves"));
        let mut l = logs();
        l.extra_files.push(LogFile {
            path: "/var/log/a".into(),
            group_name: Some("g:1".into()),
            timestamp_format: None,
            timezone: None,
        });
        let e = render(&l, "x").unwrap_err().to_string();
        assert!(e.contains("Logs.Files[0]") && e.contains("':'"), "{e}");
        // Restating a default entry exactly is harmless: dropped, not refused.
        let mut l = logs();
        l.extra_files.push(LogFile {
            path: "/var/log/dmesg".into(),
            group_name: None,
            timestamp_format: None,
            timezone: Some("Local".into()),
        });
        let v: Value = serde_json::from_str(&render(&l, "x").unwrap().unwrap()).unwrap();
        assert_eq!(
            v["logs"]["logs_collected"]["files"]["collect_list"]
                .as_array()
                .unwrap()
                .len(),
            DEFAULT_FILES.len()
        );
    }
}
