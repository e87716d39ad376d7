//! The product's own `ecs-bootstrap:` block, read strictly: an unknown key or a wrong type is an
//! error naming its path, because a typo silently ignored is an instance that joins the wrong
//! cluster or ships no logs.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::{Keys, Node};

pub const BLOCK: &str = "ecs-bootstrap";

/// How long to wait for the cluster join when the block does not say.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Settings {
    pub cluster: String,
    /// Extra ecs.config keys in the order written, values already in ecs.config form.
    pub agent_config: Vec<(String, String)>,
    pub logs: Logs,
    pub proxy: Option<String>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logs {
    pub enabled: bool,
    /// True when the block has a `Logs` key: then the CloudWatch agent is required, not optional.
    pub explicit: bool,
    pub group_prefix: Option<String>,
    pub retention_in_days: Option<u32>,
    pub extra_files: Vec<LogFile>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogFile {
    pub path: String,
    pub group_name: Option<String>,
    pub timestamp_format: Option<String>,
    pub timezone: Option<String>,
}

/// Dry runs of a local template see `<LogicalId>` placeholders where CloudFormation would put
/// real values; those must pass validation there and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    Real,
    MayBePlaceholders,
}

const TOP_KEYS: &[&str] = &["Cluster", "AgentConfig", "Logs", "Proxy", "Timeout"];
const LOGS_KEYS: &[&str] = &["Enabled", "GroupPrefix", "RetentionInDays", "Files"];
const LOG_FILE_KEYS: &[&str] = &["Path", "GroupName", "TimestampFormat", "Timezone"];
const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

pub fn parse(metadata: &Value, values: Values) -> Result<Settings> {
    let block = metadata.get(BLOCK).ok_or_else(|| {
        Error::invalid(
            BLOCK,
            "the resource's Metadata has no 'ecs-bootstrap' block (it needs at least 'Cluster')",
        )
    })?;
    let block = Node::root(block, BLOCK, Keys::Refuse);
    block.only_keys(TOP_KEYS)?;

    let cluster_node = block.required("Cluster")?;
    let cluster = cluster_node.text()?.to_string();
    validate_cluster(&cluster, &cluster_node, values)?;

    let agent_config = block.opt("AgentConfig", agent_config)?.unwrap_or_default();

    let logs = block.opt("Logs", logs)?.unwrap_or(Logs {
        enabled: true,
        explicit: false,
        group_prefix: None,
        retention_in_days: None,
        extra_files: Vec::new(),
    });

    let proxy = block.opt("Proxy", |node| {
        let given = node.text()?;
        // The agent's proxy parser refuses a URL with blanks around it and then drops the
        // proxy silently (ecs-agent/utils/httpproxy/proxy.go:150-170,211-217@8dfceca6): in a
        // proxy-only VPC the instance would never register. Trimmed, and said.
        let p = given.trim().to_string();
        if p != given {
            tracing::warn!(path = %node.path(), "blanks around the proxy URL removed");
        }
        validate_proxy(&p, node, values)?;
        Ok(p)
    })?;

    let timeout_secs = block
        .opt("Timeout", |node| {
            let t = node.whole_number()?;
            if !(1..=86_400).contains(&t) {
                return Err(node.error(format!("must be between 1 and 86400 seconds, got {t}")));
            }
            Ok(t)
        })?
        .unwrap_or(DEFAULT_TIMEOUT_SECS);

    Ok(Settings {
        cluster,
        agent_config,
        logs,
        proxy,
        timeout_secs,
    })
}

fn is_placeholder(s: &str) -> bool {
    s.starts_with('<') && s.ends_with('>')
}

fn validate_cluster(cluster: &str, node: &Node, values: Values) -> Result<()> {
    if values == Values::MayBePlaceholders && is_placeholder(cluster) {
        return Ok(());
    }
    let name = match cluster.strip_prefix("arn:") {
        Some(_) => cluster
            .split_once(":cluster/")
            .filter(|(head, _)| head.contains(":ecs:"))
            .map(|(_, name)| name)
            .ok_or_else(|| node.error(format!("'{cluster}' is not an ECS cluster ARN")))?,
        None => cluster,
    };
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(node.error(format!(
            "'{cluster}' is not a valid cluster name (1-255 letters, digits, '-' and '_') or cluster ARN"
        )))
    }
}

fn validate_proxy(proxy: &str, node: &Node, values: Values) -> Result<()> {
    if values == Values::MayBePlaceholders && is_placeholder(proxy) {
        return Ok(());
    }
    // The URL parser would quietly drop tabs and line breaks inside: the agent's would not.
    if proxy.chars().any(char::is_whitespace) {
        return Err(node.error(format!(
            "'{proxy}' has blanks inside: the ECS agent would ignore the proxy"
        )));
    }
    if let Some(why) = crate::config::ecs_config::readers::check("HTTPS_PROXY", proxy) {
        return Err(node.error(format!("'{proxy}': {why}")));
    }
    let url = reqwest::Url::parse(proxy)
        .map_err(|e| node.error(format!("'{proxy}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(node.error(format!(
            "'{proxy}' must be an http:// or https:// URL with a host"
        )));
    }
    Ok(())
}

fn agent_config(node: &Node) -> Result<Vec<(String, String)>> {
    let entries = node.entries()?;
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        crate::config::agent_keys::validate(key, value.path())?;
        let rendered = match value.value() {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            // ecs-init reads one line per key, so structured values go in as compact JSON.
            v @ (Value::Array(_) | Value::Object(_)) => v.to_string(),
            Value::Null => return Err(value.error("has no value (null)")),
        };
        // What the agent (ecs-init's reading) and ecs-init itself (systemd's) will read.
        if let Some(why) = crate::config::ecs_config::readers::check(key, &rendered) {
            return Err(value.error(format!("'{rendered}': {why}")));
        }
        out.push((key.to_string(), rendered));
    }
    Ok(out)
}

fn logs(node: &Node) -> Result<Logs> {
    // `Logs: false` is the short way to say "no CloudWatch agent on this instance".
    if let Value::Bool(enabled) = node.value() {
        return Ok(Logs {
            enabled: *enabled,
            explicit: true,
            group_prefix: None,
            retention_in_days: None,
            extra_files: Vec::new(),
        });
    }
    node.only_keys(LOGS_KEYS)?;
    let enabled = node.opt("Enabled", Node::bool)?.unwrap_or(true);
    let group_prefix = node.opt("GroupPrefix", |n| {
        let s = n.text()?;
        validate_group_chars(s, n)?;
        Ok(s.trim_end_matches('/').to_string())
    })?;
    let retention_in_days = node.opt("RetentionInDays", |n| {
        let days = n.whole_number()?;
        u32::try_from(days)
            .ok()
            .filter(|d| RETENTION_DAYS.contains(d))
            .ok_or_else(|| n.error(format!(
                "{days} is not a CloudWatch Logs retention period (one of 1, 3, 5, 7, 14, 30, 60, 90, ... 3653)"
            )))
    })?;
    let extra_files = node
        .opt("Files", |n| n.list()?.iter().map(log_file).collect())?
        .unwrap_or_default();
    Ok(Logs {
        enabled,
        explicit: true,
        group_prefix,
        retention_in_days,
        extra_files,
    })
}

fn log_file(node: &Node) -> Result<LogFile> {
    node.only_keys(LOG_FILE_KEYS)?;
    let path_node = node.required("Path")?;
    let file_path = path_node.text()?.to_string();
    if !file_path.starts_with('/') {
        return Err(path_node.error(format!("'{file_path}' must be an absolute path")));
    }
    let opt =
        |key: &str| -> Result<Option<String>> { node.opt(key, |n| n.text().map(str::to_string)) };
    let group_name = opt("GroupName")?;
    if let Some(g) = node.get("GroupName") {
        validate_group_chars(g.text()?, &g)?;
    }
    let timezone = opt("Timezone")?;
    if let Some(tz) = &timezone {
        if tz != "UTC" && tz != "Local" {
            return Err(node.key_error("Timezone", format!("must be UTC or Local, got '{tz}'")));
        }
    }
    Ok(LogFile {
        path: file_path,
        group_name,
        timestamp_format: opt("TimestampFormat")?,
        timezone,
    })
}

fn validate_group_chars(s: &str, node: &Node) -> Result<()> {
    // CloudWatch Logs group names: letters, digits and _ - / . #; placeholders' <> pass in dry runs.
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-/.#<>".contains(*c)))
    {
        return Err(node.error(format!(
            "'{s}' has '{bad}', which a CloudWatch Logs group name cannot contain"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_block(block: Value) -> Result<Settings> {
        parse(&json!({ "ecs-bootstrap": block }), Values::Real)
    }

    fn err(block: Value) -> String {
        parse_block(block).unwrap_err().to_string()
    }

    #[test]
    fn full_block() {
        let s = parse_block(json!({
            "Cluster": "todobackend-ApplicationCluster-1",
            "AgentConfig": {
                "ECS_ENABLE_CONTAINER_METADATA": true,
                "ECS_AVAILABLE_LOGGING_DRIVERS": ["json-file", "awslogs"],
                "ECS_RESERVED_MEMORY": 256
            },
            "Logs": {"GroupPrefix": "stack/ec2/Asg/", "RetentionInDays": "30",
                     "Files": [{"Path": "/var/log/app.log", "Timezone": "UTC"}]},
            "Proxy": "http://proxy.internal:3128",
            "Timeout": "300"
        }))
        .unwrap();
        assert_eq!(s.cluster, "todobackend-ApplicationCluster-1");
        assert_eq!(
            s.agent_config,
            vec![
                ("ECS_ENABLE_CONTAINER_METADATA".into(), "true".into()),
                (
                    "ECS_AVAILABLE_LOGGING_DRIVERS".into(),
                    r#"["json-file","awslogs"]"#.into()
                ),
                ("ECS_RESERVED_MEMORY".into(), "256".into()),
            ]
        );
        assert_eq!(s.logs.group_prefix.as_deref(), Some("stack/ec2/Asg"));
        assert_eq!(s.logs.retention_in_days, Some(30));
        assert!(s.logs.explicit && s.logs.enabled);
        assert_eq!(s.logs.extra_files[0].path, "/var/log/app.log");
        assert_eq!(s.timeout_secs, 300);
    }

    #[test]
    fn minimal_block_has_defaults() {
        let s = parse_block(json!({"Cluster": "c"})).unwrap();
        assert!(s.agent_config.is_empty());
        assert!(s.logs.enabled && !s.logs.explicit);
        assert_eq!(s.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(s.proxy, None);
        assert!(
            !parse_block(json!({"Cluster": "c", "Logs": false}))
                .unwrap()
                .logs
                .enabled
        );
    }

    /// Values are checked against both readers of ecs.config (src/ecs_config/readers.rs).
    #[test]
    fn agent_values_must_reach_the_agent_as_written() {
        let e = err(json!({"Cluster": "c", "AgentConfig": {"ECS_RESERVED_MEMORY": "32 "}}));
        assert!(
            e.contains("ecs-bootstrap.AgentConfig.ECS_RESERVED_MEMORY") && e.contains("trailing"),
            "{e}"
        );
        let e =
            err(json!({"Cluster": "c", "AgentConfig": {"ECS_LOG_OPTS": {"labels": "a \"b\""}}}));
        assert!(
            e.contains("ECS_LOG_OPTS") && e.contains("own environment"),
            "{e}"
        );
        // JSON with quotes read only by the agent (ecs-init's reading) is fine.
        let ok = parse(
            &json!({"ecs-bootstrap": {"Cluster": "c", "AgentConfig": {"ECS_INSTANCE_ATTRIBUTES": {"a": "x \"y\" #z"}}}}),
            Values::Real,
        );
        assert!(ok.is_ok(), "{ok:?}");
        // Blanks around a proxy URL are trimmed; blanks inside refused.
        let s = parse(
            &json!({"ecs-bootstrap": {"Cluster": "c", "Proxy": " http://p:3128\t"}}),
            Values::Real,
        )
        .unwrap();
        assert_eq!(s.proxy.as_deref(), Some("http://p:3128"));
        let e = err(json!({"Cluster": "c", "Proxy": "http://p:31\t28"}));
        assert!(
            e.contains("ecs-bootstrap.Proxy") && e.contains("blanks inside"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = err(json!({"Clustr": "c"}));
        assert!(
            e.contains("ecs-bootstrap.Clustr") && e.contains("did you mean 'Cluster'"),
            "{e}"
        );
        assert!(err(json!({})).contains("ecs-bootstrap.Cluster: is required"));
        assert!(err(json!({"Cluster": 5}))
            .contains("ecs-bootstrap.Cluster: must be a string, got a number"));
        assert!(err(json!({"Cluster": "my cluster"})).contains("not a valid cluster name"));
        let e = err(json!({"Cluster": "c", "Timeout": "ten"}));
        assert!(
            e.contains("ecs-bootstrap.Timeout") && e.contains("\"ten\""),
            "{e}"
        );
        assert!(err(json!({"Cluster": "c", "Timeout": 0})).contains("between 1 and 86400"));
        let e = err(json!({"Cluster": "c", "Proxy": "proxy:3128"}));
        assert!(e.contains("ecs-bootstrap.Proxy"), "{e}");
        let e = err(json!({"Cluster": "c", "Logs": {"Retention": 5}}));
        assert!(
            e.contains("ecs-bootstrap.Logs.Retention") && e.contains("RetentionInDays"),
            "{e}"
        );
        let e = err(json!({"Cluster": "c", "Logs": {"RetentionInDays": 2}}));
        assert!(e.contains("ecs-bootstrap.Logs.RetentionInDays"), "{e}");
        let e = err(json!({"Cluster": "c", "Logs": {"Files": [{"Path": "rel"}]}}));
        assert!(e.contains("ecs-bootstrap.Logs.Files[0].Path"), "{e}");
        let e = err(json!({"Cluster": "c", "AgentConfig": {"ECS_LOGLEVEL": null}}));
        assert!(e.contains("ecs-bootstrap.AgentConfig.ECS_LOGLEVEL"), "{e}");
        let e = err(json!({"Cluster": "c", "AgentConfig": {"ECS_LOGLEVEL": "a\nb"}}));
        assert!(e.contains("one line"), "{e}");
        let e = err(json!({"Cluster": "c", "AgentConfig": []}));
        assert!(
            e.contains("ecs-bootstrap.AgentConfig: must be a mapping, got a list"),
            "{e}"
        );
        let e = parse(&json!({}), Values::Real).unwrap_err().to_string();
        assert!(e.contains("no 'ecs-bootstrap' block"), "{e}");
    }

    #[test]
    fn cluster_arns_and_placeholders() {
        assert!(
            parse_block(json!({"Cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/prod"}))
                .is_ok()
        );
        assert!(err(json!({"Cluster": "arn:aws:s3:::bucket"})).contains("not an ECS cluster ARN"));
        assert!(
            err(json!({"Cluster": "<ApplicationCluster>"})).contains("not a valid cluster name")
        );
        let dry = parse(
            &json!({"ecs-bootstrap": {"Cluster": "<ApplicationCluster>"}}),
            Values::MayBePlaceholders,
        );
        assert!(dry.is_ok());
    }

    #[test]
    fn closest_suggestions() {
        assert_eq!(
            crate::input::closest("Clustr", TOP_KEYS.iter().copied()),
            Some("Cluster")
        );
        assert_eq!(
            crate::input::closest("Banana", TOP_KEYS.iter().copied()),
            None
        );
    }
}
