//! Step 3a: `/etc/ecs/ecs.config`, written the way ecs-init reads it.
//!
//! ecs-init is not a shell: each line is split once on '=' after trimming, with no quote
//! stripping and no comments. So values are written raw (JSON compact on one line), ECS_CLUSTER
//! first, and the whole file is rewritten from a key map so a re-run never duplicates a line
//! (the classic first-run script's `>>` did).

use crate::config::agent_keys;
use crate::config::settings::Settings;

pub mod readers;

pub const PATH: &str = "/etc/ecs/ecs.config";

/// What the metadata asks for. Keys that are already in the file (baked into the AMI, or written
/// by an Init command) and that the metadata does not set are kept, after ours.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentConfig {
    pub entries: Vec<(String, String)>,
}

/// Agent traffic to IMDS, the task metadata endpoint and docker must never go through a proxy.
pub const NO_PROXY: &str = "169.254.169.254,169.254.170.2,/var/run/docker.sock";

impl AgentConfig {
    pub fn from_settings(s: &Settings) -> Self {
        let mut entries = vec![("ECS_CLUSTER".to_string(), s.cluster.clone())];
        entries.extend(s.agent_config.iter().cloned());
        if let Some(proxy) = &s.proxy {
            entries.push(("HTTP_PROXY".into(), proxy.clone()));
            entries.push(("HTTPS_PROXY".into(), proxy.clone()));
            entries.push(("NO_PROXY".into(), NO_PROXY.into()));
        }
        AgentConfig { entries }
    }

    pub fn holds_secret(&self) -> bool {
        self.entries.iter().any(|(k, v)| is_secret_entry(k, v))
    }

    pub fn mode(&self, existing: &[(String, String)]) -> u32 {
        if self.holds_secret() || existing.iter().any(|(k, v)| is_secret_entry(k, v)) {
            0o600
        } else {
            0o644
        }
    }

    /// The file's content: our keys first (ECS_CLUSTER leading), then the keys of `existing`
    /// that we do not set, in their order, each key once.
    pub fn render(&self, existing: &[(String, String)]) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            out.push_str(&format!("{k}={v}\n"));
        }
        let mut kept: Vec<&(String, String)> = Vec::new();
        for entry in existing {
            if self.entries.iter().any(|(k, _)| *k == entry.0) {
                continue;
            }
            // ecs-init lets the last line win; keep that value, in the first line's place.
            match kept.iter_mut().find(|(k, _)| *k == entry.0) {
                Some(slot) => *slot = entry,
                None => kept.push(entry),
            }
        }
        for (k, v) in kept {
            out.push_str(&format!("{k}={v}\n"));
        }
        out
    }

    /// Keys whose value in the existing file we are about to change: worth a log line, since a
    /// baked-in value being overridden is usually a surprise.
    pub fn overrides<'a>(&'a self, existing: &'a [(String, String)]) -> Vec<&'a str> {
        self.entries
            .iter()
            .filter(|(k, v)| existing.iter().any(|(ek, ev)| ek == k && ev != v))
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// A secret agent key, or any value with a `user:password@` URL in it (a proxy with
/// credentials): the file is then 0600 and the value redacted wherever it is shown.
pub fn is_secret_entry(key: &str, value: &str) -> bool {
    agent_keys::is_secret(key) || crate::sys::redact::has_url_userinfo(value)
}

/// Parses ecs.config exactly like ecs-init ([`readers::ecs_init`]).
pub fn parse(text: &str) -> Vec<(String, String)> {
    readers::ecs_init(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{self, Values};
    use serde_json::json;

    fn secret_keys(text: &str) -> Vec<String> {
        parse(text)
            .into_iter()
            .filter(|(k, v)| is_secret_entry(k, v))
            .map(|(k, _)| k)
            .collect()
    }

    fn config(block: serde_json::Value) -> AgentConfig {
        let s = settings::parse(&json!({ "ecs-bootstrap": block }), Values::Real).unwrap();
        AgentConfig::from_settings(&s)
    }

    #[test]
    fn renders_cluster_first_and_json_compact() {
        let c = config(json!({
            "Cluster": "prod",
            "AgentConfig": {"ECS_AVAILABLE_LOGGING_DRIVERS": ["json-file", "awslogs"],
                            "ECS_ENABLE_CONTAINER_METADATA": true},
            "Proxy": "http://proxy.internal:3128"
        }));
        assert_eq!(
            c.render(&[]),
            "ECS_CLUSTER=prod\n\
             ECS_AVAILABLE_LOGGING_DRIVERS=[\"json-file\",\"awslogs\"]\n\
             ECS_ENABLE_CONTAINER_METADATA=true\n\
             HTTP_PROXY=http://proxy.internal:3128\n\
             HTTPS_PROXY=http://proxy.internal:3128\n\
             NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock\n"
        );
        assert_eq!(c.mode(&[]), 0o644);
    }

    #[test]
    fn a_proxy_with_a_password_makes_the_file_private() {
        let c = config(json!({"Cluster": "c", "Proxy": "http://u:pw-secret@p:3128"}));
        assert_eq!(c.mode(&[]), 0o600);
        // What the plan redacts (Plan::redacted): exactly the entries carrying the password.
        assert_eq!(secret_keys(&c.render(&[])), ["HTTP_PROXY", "HTTPS_PROXY"]);
        // Kept from an earlier file: still private.
        let plain = AgentConfig {
            entries: vec![("ECS_CLUSTER".into(), "c".into())],
        };
        let existing = parse("HTTPS_PROXY=http://u:pw-secret@p:3128\n");
        assert_eq!(plain.mode(&existing), 0o600);
    }

    #[test]
    fn no_proxy_lines_without_proxy() {
        // The classic script's unquoted `[ -n $PROXY_URL ]` wrote empty proxy lines every boot.
        let text = config(json!({"Cluster": "prod"})).render(&[]);
        assert_eq!(text, "ECS_CLUSTER=prod\n");
    }

    #[test]
    fn rerender_over_own_output_is_identical_and_keeps_foreign_keys() {
        let c = config(json!({"Cluster": "prod", "AgentConfig": {"ECS_LOGLEVEL": "debug"}}));
        let baked =
            "ECS_CLUSTER=default\nECS_DATADIR=/data\nECS_LOGLEVEL=info\nECS_DATADIR=/data2\n";
        let first = c.render(&parse(baked));
        assert_eq!(
            first,
            "ECS_CLUSTER=prod\nECS_LOGLEVEL=debug\nECS_DATADIR=/data2\n"
        );
        assert_eq!(c.render(&parse(&first)), first);
        assert_eq!(
            c.overrides(&parse(baked)),
            vec!["ECS_CLUSTER", "ECS_LOGLEVEL"]
        );
    }

    #[test]
    fn secrets_make_the_file_private_and_are_redacted() {
        let c = config(json!({"Cluster": "prod", "AgentConfig": {
            "ECS_ENGINE_AUTH_TYPE": "dockercfg",
            "ECS_ENGINE_AUTH_DATA": {"https://index.docker.io/v1/": {"auth": "c2VjcmV0", "email": "a@b"}}
        }}));
        assert_eq!(c.mode(&[]), 0o600);
        let text = c.render(&[]);
        assert!(text.contains("ECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\""));
        assert_eq!(secret_keys(&text), ["ECS_ENGINE_AUTH_DATA"]);
        // A secret baked into the existing file also keeps the file private.
        let plain = config(json!({"Cluster": "prod"}));
        assert_eq!(plain.mode(&parse("ECS_ENGINE_AUTH_DATA=x\n")), 0o600);
    }

    #[test]
    fn parse_is_ecs_init_parse() {
        assert_eq!(
            parse("  A=b=c \nnoequals\nKEY = v\nQ=\"quoted\"\n"),
            vec![
                ("A".into(), "b=c".into()),
                ("KEY ".into(), " v".into()),
                ("Q".into(), "\"quoted\"".into())
            ]
        );
    }
}
