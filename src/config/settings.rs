//! The product's own `ecs-bootstrap:` block, read strictly: an unknown key or a wrong type is an
//! error naming its path, because a typo silently ignored is an instance that joins the wrong
//! cluster or ships no logs.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

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
    let map = as_map(block, BLOCK)?;
    check_keys(map, BLOCK, TOP_KEYS)?;

    let cluster_path = format!("{BLOCK}.Cluster");
    let cluster = match map.get("Cluster") {
        Some(v) => string(v, &cluster_path)?,
        None => return Err(Error::invalid(cluster_path, "is required")),
    };
    validate_cluster(&cluster, &cluster_path, values)?;

    let agent_config = match map.get("AgentConfig") {
        Some(v) => agent_config(v, &format!("{BLOCK}.AgentConfig"))?,
        None => Vec::new(),
    };

    let logs = match map.get("Logs") {
        Some(v) => logs(v, &format!("{BLOCK}.Logs"))?,
        None => Logs {
            enabled: true,
            explicit: false,
            group_prefix: None,
            retention_in_days: None,
            extra_files: Vec::new(),
        },
    };

    let proxy = match map.get("Proxy") {
        Some(v) => {
            let path = format!("{BLOCK}.Proxy");
            let given = string(v, &path)?;
            // The agent's proxy parser refuses a URL with blanks around it and then drops the
            // proxy silently (ecs-agent/utils/httpproxy/proxy.go:150-170,211-217@8dfceca6): in a
            // proxy-only VPC the instance would never register. Trimmed, and said.
            let p = given.trim().to_string();
            if p != given {
                tracing::warn!(path = %path, "blanks around the proxy URL removed");
            }
            validate_proxy(&p, &path, values)?;
            Some(p)
        }
        None => None,
    };

    let timeout_secs = match map.get("Timeout") {
        Some(v) => {
            let path = format!("{BLOCK}.Timeout");
            let t = integer(v, &path)?;
            if !(1..=86_400).contains(&t) {
                return Err(Error::invalid(
                    path,
                    format!("must be between 1 and 86400 seconds, got {t}"),
                ));
            }
            t
        }
        None => DEFAULT_TIMEOUT_SECS,
    };

    Ok(Settings {
        cluster,
        agent_config,
        logs,
        proxy,
        timeout_secs,
    })
}

fn as_map<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::invalid(path, format!("must be a mapping, got {}", kind(v))))
}

fn check_keys(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<()> {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            let hint = closest(key, allowed.iter().copied())
                .map(|k| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            return Err(Error::invalid(
                format!("{path}.{key}"),
                format!("unknown key '{key}'{hint}; allowed: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn string(v: &Value, path: &str) -> Result<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::String(_) => Err(Error::invalid(path, "must not be empty")),
        other => Err(Error::invalid(
            path,
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

/// CloudFormation turns parameter values into strings, so "600" is as good as 600.
fn integer(v: &Value, path: &str) -> Result<u64> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| Error::invalid(path, format!("must be a whole number, got {}", short(v))))
}

/// This block's booleans: what cfn-init reads as true ([`cfn_boolean`]) is true; an explicit
/// false (`false`, `"no"`, `0`, ...) is false; anything else is an error (this block is ours,
/// so a typo is not silently false).
fn boolean(v: &Value, path: &str) -> Result<bool> {
    match cfn_boolean(v, path)? {
        Boolean::True => Ok(true),
        Boolean::False => Ok(false),
        Boolean::OtherFalse => Err(Error::invalid(
            path,
            format!("must be true or false, got {}", short(v)),
        )),
    }
}

/// How cfn-init read a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boolean {
    True,
    /// An explicit false: `false`, `null`, `0`, `""`, `"false"`, `"no"`, `"n"`, `"0"`, `[]`, `{}`.
    False,
    /// Anything else (`"maybe"`, `"on"`, `2`): false for cfn-init too, but probably not meant.
    OtherFalse,
}

impl Boolean {
    pub(crate) fn is_true(self) -> bool {
        self == Boolean::True
    }
}

/// cfn-init's `util.interpret_boolean` (util.py:368-386@25fabe91), the one boolean reader for
/// `ignoreErrors`, `enabled` and `ensureRunning`: a falsy value is false; a string is lowered and
/// stripped; true is `true`, `1`, `"true"`, `"yes"`, `"y"`, `"1"` (so `" YES "` and `1.0` too),
/// anything else false. A non-empty list or mapping makes cfn-init fail (unhashable): an error.
pub(crate) fn cfn_boolean(v: &Value, path: &str) -> Result<Boolean> {
    let word = |s: &str| -> Boolean {
        match s.to_lowercase().trim() {
            "true" | "yes" | "y" | "1" => Boolean::True,
            "" | "false" | "no" | "n" | "0" => Boolean::False,
            _ => Boolean::OtherFalse,
        }
    };
    Ok(match v {
        Value::Null | Value::Bool(false) => Boolean::False,
        Value::Bool(true) => Boolean::True,
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Boolean::True,
            Some(0.0) => Boolean::False,
            _ => Boolean::OtherFalse,
        },
        Value::String(s) => word(s),
        Value::Array(a) if a.is_empty() => Boolean::False,
        Value::Object(m) if m.is_empty() => Boolean::False,
        other => {
            return Err(Error::invalid(
                path,
                format!("must be true or false, got {}", short(other)),
            ))
        }
    })
}

/// [`cfn_boolean`] for the Init block: a value cfn-init reads as false without it looking like
/// one (`"maybe"`) is false here too, with a warning naming the key.
pub(crate) fn init_boolean(v: &Value, path: &str) -> Result<bool> {
    let b = cfn_boolean(v, path)?;
    if b == Boolean::OtherFalse {
        tracing::warn!(
            key = path,
            value = %short(v),
            "read as false, as cfn-init does (true is true, 1, \"true\", \"yes\", \"y\" or \"1\")"
        );
    }
    Ok(b.is_true())
}

/// A value as it appears in an error: short, on one line.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

fn is_placeholder(s: &str) -> bool {
    s.starts_with('<') && s.ends_with('>')
}

fn validate_cluster(cluster: &str, path: &str, values: Values) -> Result<()> {
    if values == Values::MayBePlaceholders && is_placeholder(cluster) {
        return Ok(());
    }
    let name = match cluster.strip_prefix("arn:") {
        Some(_) => cluster
            .split_once(":cluster/")
            .filter(|(head, _)| head.contains(":ecs:"))
            .map(|(_, name)| name)
            .ok_or_else(|| {
                Error::invalid(path, format!("'{cluster}' is not an ECS cluster ARN"))
            })?,
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
        Err(Error::invalid(
            path,
            format!(
                "'{cluster}' is not a valid cluster name (1-255 letters, digits, '-' and '_') or cluster ARN"
            ),
        ))
    }
}

fn validate_proxy(proxy: &str, path: &str, values: Values) -> Result<()> {
    if values == Values::MayBePlaceholders && is_placeholder(proxy) {
        return Ok(());
    }
    // The URL parser would quietly drop tabs and line breaks inside: the agent's would not.
    if proxy.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            path,
            format!("'{proxy}' has blanks inside: the ECS agent would ignore the proxy"),
        ));
    }
    if let Some(why) = crate::config::ecs_config::readers::check("HTTPS_PROXY", proxy) {
        return Err(Error::invalid(path, format!("'{proxy}': {why}")));
    }
    let url = reqwest::Url::parse(proxy)
        .map_err(|e| Error::invalid(path, format!("'{proxy}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            path,
            format!("'{proxy}' must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(())
}

fn agent_config(v: &Value, path: &str) -> Result<Vec<(String, String)>> {
    let map = as_map(v, path)?;
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let key_path = format!("{path}.{key}");
        crate::config::agent_keys::validate(key, &key_path)?;
        let rendered = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            // ecs-init reads one line per key, so structured values go in as compact JSON.
            Value::Array(_) | Value::Object(_) => value.to_string(),
            Value::Null => {
                return Err(Error::invalid(key_path, "has no value (null)"));
            }
        };
        // What the agent (ecs-init's reading) and ecs-init itself (systemd's) will read.
        if let Some(why) = crate::config::ecs_config::readers::check(key, &rendered) {
            return Err(Error::invalid(key_path, format!("'{rendered}': {why}")));
        }
        out.push((key.clone(), rendered));
    }
    Ok(out)
}

fn logs(v: &Value, path: &str) -> Result<Logs> {
    // `Logs: false` is the short way to say "no CloudWatch agent on this instance".
    if let Value::Bool(enabled) = v {
        return Ok(Logs {
            enabled: *enabled,
            explicit: true,
            group_prefix: None,
            retention_in_days: None,
            extra_files: Vec::new(),
        });
    }
    let map = as_map(v, path)?;
    check_keys(map, path, LOGS_KEYS)?;
    let enabled = match map.get("Enabled") {
        Some(v) => boolean(v, &format!("{path}.Enabled"))?,
        None => true,
    };
    let group_prefix = match map.get("GroupPrefix") {
        Some(v) => {
            let p = format!("{path}.GroupPrefix");
            let s = string(v, &p)?;
            validate_group_chars(&s, &p)?;
            Some(s.trim_end_matches('/').to_string())
        }
        None => None,
    };
    let retention_in_days = match map.get("RetentionInDays") {
        Some(v) => {
            let p = format!("{path}.RetentionInDays");
            let days = integer(v, &p)?;
            match u32::try_from(days).ok().filter(|d| RETENTION_DAYS.contains(d)) {
                Some(d) => Some(d),
                None => {
                    return Err(Error::invalid(
                        p,
                        format!("{days} is not a CloudWatch Logs retention period (one of 1, 3, 5, 7, 14, 30, 60, 90, ... 3653)"),
                    ))
                }
            }
        }
        None => None,
    };
    let extra_files = match map.get("Files") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| log_file(item, &format!("{path}.Files[{i}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(Error::invalid(
                format!("{path}.Files"),
                format!("must be a list, got {}", kind(other)),
            ))
        }
        None => Vec::new(),
    };
    Ok(Logs {
        enabled,
        explicit: true,
        group_prefix,
        retention_in_days,
        extra_files,
    })
}

fn log_file(v: &Value, path: &str) -> Result<LogFile> {
    let map = as_map(v, path)?;
    check_keys(map, path, LOG_FILE_KEYS)?;
    let file_path = match map.get("Path") {
        Some(v) => string(v, &format!("{path}.Path"))?,
        None => return Err(Error::invalid(format!("{path}.Path"), "is required")),
    };
    if !file_path.starts_with('/') {
        return Err(Error::invalid(
            format!("{path}.Path"),
            format!("'{file_path}' must be an absolute path"),
        ));
    }
    let opt = |key: &str| -> Result<Option<String>> {
        map.get(key)
            .map(|v| string(v, &format!("{path}.{key}")))
            .transpose()
    };
    let group_name = opt("GroupName")?;
    if let Some(g) = &group_name {
        validate_group_chars(g, &format!("{path}.GroupName"))?;
    }
    let timezone = opt("Timezone")?;
    if let Some(tz) = &timezone {
        if tz != "UTC" && tz != "Local" {
            return Err(Error::invalid(
                format!("{path}.Timezone"),
                format!("must be UTC or Local, got '{tz}'"),
            ));
        }
    }
    Ok(LogFile {
        path: file_path,
        group_name,
        timestamp_format: opt("TimestampFormat")?,
        timezone,
    })
}

fn validate_group_chars(s: &str, path: &str) -> Result<()> {
    // CloudWatch Logs group names: letters, digits and _ - / . #; placeholders' <> pass in dry runs.
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-/.#<>".contains(*c)))
    {
        return Err(Error::invalid(
            path,
            format!("'{s}' has '{bad}', which a CloudWatch Logs group name cannot contain"),
        ));
    }
    Ok(())
}

/// The allowed name closest to a typo, when it is close enough to be the intended one.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 6))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
    fn booleans_read_as_cfn_init_reads_them() {
        use Boolean::*;
        for (v, want) in [
            (json!(true), True),
            (json!(1), True),
            (json!(1.0), True),
            (json!("true"), True),
            (json!(" YES "), True),
            (json!("y"), True),
            (json!("1"), True),
            (json!(false), False),
            (json!(null), False),
            (json!(0), False),
            (json!(""), False),
            (json!("No"), False),
            (json!([]), False),
            (json!("maybe"), OtherFalse),
            (json!("on"), OtherFalse),
            (json!(2), OtherFalse),
        ] {
            assert_eq!(cfn_boolean(&v, "p").unwrap(), want, "{v}");
        }
        assert!(cfn_boolean(&json!(["x"]), "p").is_err());
        assert!(boolean(&json!("yes"), "p").unwrap());
        assert!(boolean(&json!("maybe"), "p").is_err());
    }

    #[test]
    fn closest_suggestions() {
        assert_eq!(closest("Clustr", TOP_KEYS.iter().copied()), Some("Cluster"));
        assert_eq!(closest("Banana", TOP_KEYS.iter().copied()), None);
    }
}
