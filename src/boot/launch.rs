//! What a boot run configured this instance from, in `/var/lib/ecs-bootstrap/launch.json`
//! (0600, next to `state.json`): the stack and launch resource, the region, the configSets, and
//! a digest of each block it applied. `ecs-bootstrap hup` without a cfn-hup.conf (its
//! zero-config mode, src/hup/launch.rs) watches that resource, re-runs Init with the same
//! configSets, and starts its comparisons from these digests, so a stack update between the
//! boot and the daemon's first poll is not missed.
//!
//! Digests, not the blocks: Metadata holds passwords and keys (Init `authentication`, agent
//! secrets) that must not be copied to one more file. `state.json` is an interface with a fixed
//! format (src/boot/state.rs), so this is a file of its own.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::sys::fs::Root;

pub const FILE: &str = "/var/lib/ecs-bootstrap/launch.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRecord {
    pub stack: String,
    /// The resource whose Metadata configured the instance (`--resource`).
    pub resource: String,
    pub signal_resource: String,
    pub region: String,
    /// `--configsets` as given (empty: Init's `default`, or its only config).
    #[serde(default)]
    pub configsets: Vec<String>,
    /// [`digest`] of `AWS::CloudFormation::Init` as applied (`None`: no such block).
    #[serde(default)]
    pub init: Option<String>,
    /// [`digest`] of the `ecs-bootstrap:` block as applied.
    #[serde(default)]
    pub settings: Option<String>,
}

impl LaunchRecord {
    /// The record, if there is one that reads (an unreadable one is logged and is none).
    pub fn read(root: &Root) -> Option<LaunchRecord> {
        let text = root.read_to_string(FILE).ok()?;
        serde_json::from_str(&text)
            .inspect_err(
                |e| tracing::warn!(path = FILE, error = %e, "ignoring an unreadable launch record"),
            )
            .ok()
    }

    /// Best effort, as `state::record`: a record that cannot be written costs the zero-config
    /// hup a discovery, not the boot.
    pub fn write(&self, root: &Root) {
        if let Err(e) = super::state::write_private_json(root, FILE, self) {
            tracing::warn!(error = %e, "could not record the launch resource");
        }
    }
}

/// `sha256:HEX` of the block's JSON with object keys sorted: equal blocks, in any key order,
/// have equal digests. `None` for no block.
pub fn digest(block: Option<&Json>) -> Option<String> {
    let block = block?;
    let mut text = String::new();
    canonical(block, &mut text);
    let sum = Sha256::digest(text.as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256:{hex}"))
}

fn canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_ignore_key_order_and_see_every_change() {
        let a: Json = serde_json::from_str(r#"{"a": 1, "b": {"c": [1, "x"]}}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"b": {"c": [1, "x"]}, "a": 1}"#).unwrap();
        assert_eq!(digest(Some(&a)), digest(Some(&b)));
        assert_ne!(
            digest(Some(&a)),
            digest(Some(&json!({"a": 2, "b": {"c": [1, "x"]}})))
        );
        assert_ne!(
            digest(Some(&json!(["a,b"]))),
            digest(Some(&json!(["a", "b"])))
        );
        assert_eq!(digest(None), None);
        assert!(digest(Some(&a)).unwrap().starts_with("sha256:"));
    }

    #[test]
    fn the_record_round_trips_and_holds_no_block() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(LaunchRecord::read(&root), None);
        let rec = LaunchRecord {
            stack: "s".into(),
            resource: "LC".into(),
            signal_resource: "Asg".into(),
            region: "eu-west-1".into(),
            configsets: vec!["a".into()],
            init: digest(Some(
                &json!({"config": {"files": {"/x": {"content": "secret"}}}}),
            )),
            settings: None,
        };
        rec.write(&root);
        assert_eq!(LaunchRecord::read(&root), Some(rec));
        let text = std::fs::read_to_string(root.map(FILE).unwrap()).unwrap();
        assert!(!text.contains("secret"), "{text}");
    }
}
