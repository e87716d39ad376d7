//! What each hook last saw, kept across restarts, and each hook's failure state.
//!
//! cfn-hup keeps a JSON object `"<hook name>|<path>"` -> last value in
//! `/var/lib/cfn-hup/data/metadata_db.json` (0700 directory, 0600 file; update_hooks.py:603-615,
//! 638-639, 652-654, 675-677@25fabe91; json_file_manager.py:27-52), a `datetime` written as
//! `{"_datetime: special_serialization: not_regular_json_": "\"%Y-%m-%dT%H:%M:%S.%f\""}`
//! (json_file_manager.py:57-108). Ours is `/var/lib/ecs-bootstrap/hup/state.json` (under
//! `--root`, written atomically): the same map under `"metadata"`, plus `"failures"`. When ours
//! does not exist yet, cfn-hup's db is imported, so replacing cfn-hup on a running instance does
//! not fire every `post.add` hook again.
//!
//! A db that cannot be parsed reads as empty, as cfn-hup's does (json_file_manager.py:40-46):
//! every hook then starts again from "no previous value".
//!
//! Ours only: a failing action is retried with an exponential backoff per hook (the issue's
//! "not at full rate forever"), where cfn-hup retries it on every poll (update_hooks.py:671-673).
//! A new value at the path is not held back by the backoff of a failure on an older one.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::rules::{Timestamp, Value};
use crate::sys::fs::{write_atomic, FileMeta, Root};
use crate::sys::retry::Backoff;

pub const DIR: &str = "/var/lib/ecs-bootstrap/hup";
pub const FILE: &str = "/var/lib/ecs-bootstrap/hup/state.json";
/// cfn-hup's db (update_hooks.py:606, 615).
pub const CFN_HUP_DB: &str = "/var/lib/cfn-hup/data/metadata_db.json";
/// Ours: a state file is a few kilobytes; Metadata is at most a megabyte per resource.
pub const MAX_STATE_BYTES: u64 = 64 << 20;
/// Ours: the longest wait between two attempts of a failing action.
pub const MAX_BACKOFF_SECS: u64 = 6 * 3600;

const DATETIME_MARKER: &str = "_datetime: special_serialization: not_regular_json_";

/// The db key (update_hooks.py:639): renaming a hook or changing its path starts it afresh.
pub fn key(name: &str, path: &str) -> String {
    format!("{name}|{path}")
}

/// `Converter.serialize` (json_file_manager.py:73-85).
pub fn serialize(v: Option<&Value>) -> Json {
    match v {
        None => Json::Null,
        Some(Value::Json(j)) => j.clone(),
        Some(Value::Timestamp(t)) => {
            let mut m = Map::new();
            m.insert(DATETIME_MARKER.into(), Json::String(t.db_format()));
            Json::Object(m)
        }
    }
}

/// `Converter.deserialize` (json_file_manager.py:87-102); `null` is no value. A datetime Python
/// could not parse (it would fail the hook on every poll) is kept as the JSON it is.
pub fn deserialize(j: &Json) -> Option<Value> {
    match j {
        Json::Null => None,
        Json::Object(m) => match m.get(DATETIME_MARKER).and_then(Json::as_str) {
            Some(s) => Some(
                Timestamp::parse_db_format(s)
                    .map(Value::Timestamp)
                    .unwrap_or_else(|| Value::Json(j.clone())),
            ),
            None => Some(Value::Json(j.clone())),
        },
        other => Some(Value::Json(other.clone())),
    }
}

/// A hook whose action last failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `None` when it was killed by a signal or could not be started.
    pub exit_code: Option<i32>,
    /// Consecutive failed attempts.
    pub attempts: u32,
    pub last_failure_unix: u64,
    pub next_try_unix: u64,
    /// The value the action failed to apply (serialised as in `metadata`).
    pub value: Json,
    /// Why, when there is no exit code to say it (the zero-config mode's built-in actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    #[serde(default)]
    metadata: Map<String, Json>,
    #[serde(default)]
    failures: BTreeMap<String, Failure>,
}

/// Where [`Store::load`] found the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Ours,
    /// Imported from cfn-hup's metadata db.
    CfnHup,
    /// Neither exists: a first run.
    Fresh,
    /// A file that is not a JSON object (the message says which and why): read as empty.
    Unreadable(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// `interval_secs * 2^(attempts-1)`, at least one interval, at most [`MAX_BACKOFF_SECS`] (or the
/// interval, if that is longer): the first retry is on the next poll, as in cfn-hup.
pub fn backoff_secs(attempts: u32, interval_secs: u64) -> u64 {
    let max = Duration::from_secs(MAX_BACKOFF_SECS.max(interval_secs));
    Backoff::exponential(Duration::from_secs(interval_secs), 2, max)
        .ceiling(attempts)
        .as_secs()
}

fn read_bounded(root: &Root, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let err = |message: String| StoreError {
        path: path.to_string(),
        message,
    };
    let mapped = root.map(path).map_err(|e| err(e.to_string()))?;
    let f = match std::fs::File::open(&mapped) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut out = Vec::new();
    f.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(e.to_string()))?;
    if out.len() as u64 > MAX_STATE_BYTES {
        return Err(err(format!("larger than {MAX_STATE_BYTES} bytes")));
    }
    Ok(Some(out))
}

impl Store {
    /// Ours, else cfn-hup's db, else empty. An unreadable file (not JSON) is empty, as in
    /// cfn-hup; a file that cannot be opened is an error.
    pub fn load(root: &Root) -> Result<(Store, Origin), StoreError> {
        if let Some(bytes) = read_bounded(root, FILE)? {
            return Ok(match serde_json::from_slice::<Store>(&bytes) {
                Ok(s) => (s, Origin::Ours),
                Err(e) => (Store::default(), Origin::Unreadable(format!("{FILE}: {e}"))),
            });
        }
        if let Some(bytes) = read_bounded(root, CFN_HUP_DB)? {
            return Ok(match serde_json::from_slice::<Map<String, Json>>(&bytes) {
                Ok(metadata) => (
                    Store {
                        metadata,
                        failures: BTreeMap::new(),
                    },
                    Origin::CfnHup,
                ),
                Err(e) => (
                    Store::default(),
                    Origin::Unreadable(format!("{CFN_HUP_DB}: {e}")),
                ),
            });
        }
        Ok((Store::default(), Origin::Fresh))
    }

    /// The last value stored for `key` (`metadata.get(key, None)`, deserialised).
    pub fn old(&self, key: &str) -> Option<Value> {
        self.metadata.get(key).and_then(deserialize)
    }

    /// Stores the new value (no trigger fired, or the action succeeded) and forgets a failure.
    pub fn record(&mut self, key: &str, new: Option<&Value>) {
        self.metadata.insert(key.to_string(), serialize(new));
        self.failures.remove(key);
    }

    /// The action for `key` failed on `new`: count it and schedule the next try. A failure on a
    /// different value than the last one starts the count again.
    pub fn fail(
        &mut self,
        key: &str,
        new: Option<&Value>,
        exit_code: Option<i32>,
        now_unix: u64,
        interval_secs: u64,
    ) -> &Failure {
        let value = serialize(new);
        let attempts = match self.failures.get(key) {
            Some(f) if f.value == value => f.attempts.saturating_add(1),
            _ => 1,
        };
        self.failures.insert(
            key.to_string(),
            Failure {
                exit_code,
                attempts,
                last_failure_unix: now_unix,
                next_try_unix: now_unix.saturating_add(backoff_secs(attempts, interval_secs)),
                value,
                reason: None,
            },
        );
        &self.failures[key]
    }

    /// [`Store::fail`] with the reason kept in the state.
    pub fn fail_because(
        &mut self,
        key: &str,
        new: Option<&Value>,
        reason: String,
        now_unix: u64,
        interval_secs: u64,
    ) -> &Failure {
        self.fail(key, new, None, now_unix, interval_secs);
        let f = self.failures.get_mut(key).expect("just inserted");
        f.reason = Some(reason);
        f
    }

    pub fn failure(&self, key: &str) -> Option<&Failure> {
        self.failures.get(key)
    }

    /// May the action for `key` run now on `new`? Yes unless it failed on this same value and
    /// its next try is still ahead.
    pub fn due(&self, key: &str, new: Option<&Value>, now_unix: u64) -> bool {
        match self.failures.get(key) {
            Some(f) => f.value != serialize(new) || now_unix >= f.next_try_unix,
            None => true,
        }
    }

    /// Writes the state atomically: directory 0700, file 0600 (as cfn-hup's).
    pub fn save(&self, root: &Root) -> Result<(), StoreError> {
        let err = |path: &str, message: String| StoreError {
            path: path.to_string(),
            message,
        };
        let dir = root
            .open_dir(DIR, Some(0o700))
            .map_err(|e| err(DIR, e.to_string()))?;
        dir.set_mode(0o700).map_err(|e| err(DIR, e.to_string()))?;
        let text = serde_json::to_string_pretty(self).expect("the state serialises") + "\n";
        write_atomic(
            root,
            FILE,
            text.as_bytes(),
            FileMeta {
                mode: 0o600,
                uid: None,
                gid: None,
            },
        )
        .map_err(|e| err(FILE, e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let r = Root::new(d.path());
        (d, r)
    }

    fn j(v: Json) -> Value {
        Value::Json(v)
    }

    #[test]
    fn round_trip_across_a_restart() {
        let (_d, r) = root();
        let (mut s, origin) = Store::load(&r).unwrap();
        assert_eq!(origin, Origin::Fresh);
        let k = key("reload", "Resources.LC.Metadata");
        assert!(s.old(&k).is_none());
        s.record(&k, Some(&j(json!({"a": [1, 2]}))));
        let ts = Value::Timestamp(Timestamp {
            secs: 1_700_000_000,
            micros: 5,
        });
        s.record("t|Resources.LC", Some(&ts));
        s.record("gone|Resources.X.Metadata", None);
        s.save(&r).unwrap();
        let (s2, origin) = Store::load(&r).unwrap();
        assert_eq!(origin, Origin::Ours);
        assert!(matches!(s2.old(&k), Some(Value::Json(v)) if v == json!({"a": [1, 2]})));
        assert!(matches!(s2.old("t|Resources.LC"), Some(Value::Timestamp(t)) if t.micros == 5));
        assert!(s2.old("gone|Resources.X.Metadata").is_none());
        let file = r.map(FILE).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("\"_datetime: special_serialization: not_regular_json_\": \"\\\"2023-11-14T22:13:20.000005\\\"\""),
            "{text}"
        );
    }

    #[test]
    fn imports_cfn_hups_db_and_reads_a_torn_one_as_empty() {
        let (_d, r) = root();
        let db = r.map(CFN_HUP_DB).unwrap();
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        // As cfn-hup's json.dump writes it.
        std::fs::write(
            &db,
            r#"{"h|Resources.R.Metadata": {"k": 1}, "t|Resources.R": {"_datetime: special_serialization: not_regular_json_": "\"2024-01-02T03:04:05.000000\""}}"#,
        )
        .unwrap();
        let (s, origin) = Store::load(&r).unwrap();
        assert_eq!(origin, Origin::CfnHup);
        assert!(
            matches!(s.old("h|Resources.R.Metadata"), Some(Value::Json(v)) if v == json!({"k": 1}))
        );
        match s.old("t|Resources.R") {
            Some(Value::Timestamp(t)) => assert_eq!(t.isoformat(), "2024-01-02T03:04:05"),
            other => panic!("{other:?}"),
        }
        // Ours wins once it exists.
        s.save(&r).unwrap();
        std::fs::write(&db, "{}").unwrap();
        assert_eq!(Store::load(&r).unwrap().1, Origin::Ours);
        std::fs::write(r.map(FILE).unwrap(), "{torn").unwrap();
        let (s, origin) = Store::load(&r).unwrap();
        assert!(matches!(origin, Origin::Unreadable(m) if m.contains("state.json")));
        assert!(s.old("h|Resources.R.Metadata").is_none());
    }

    #[test]
    fn failures_back_off_per_hook_and_reset() {
        let mut s = Store::default();
        let k = key("h", "Resources.R.Metadata");
        let v1 = j(json!("one"));
        let v2 = j(json!("two"));
        assert!(s.due(&k, Some(&v1), 0));
        let f = s.fail(&k, Some(&v1), Some(3), 1000, 60).clone();
        assert_eq!(
            (f.attempts, f.exit_code, f.next_try_unix),
            (1, Some(3), 1060)
        );
        assert!(!s.due(&k, Some(&v1), 1059));
        assert!(s.due(&k, Some(&v1), 1060), "first retry on the next poll");
        assert!(s.due(&k, Some(&v2), 1001), "a new value is not held back");
        assert_eq!(s.fail(&k, Some(&v1), Some(3), 1060, 60).next_try_unix, 1180);
        assert_eq!(s.fail(&k, Some(&v1), None, 1180, 60).attempts, 3);
        assert_eq!(
            s.fail(&k, Some(&v2), Some(1), 1200, 60).attempts,
            1,
            "new value, new count"
        );
        // Success clears it; the stored value is the new one.
        s.record(&k, Some(&v2));
        assert!(s.failure(&k).is_none());
        assert!(matches!(s.old(&k), Some(Value::Json(v)) if v == json!("two")));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_secs(1, 900), 900);
        assert_eq!(backoff_secs(2, 900), 1800);
        assert_eq!(backoff_secs(5, 900), 4 * 3600);
        assert_eq!(backoff_secs(6, 900), 6 * 3600);
        assert_eq!(backoff_secs(99, 900), 6 * 3600);
        assert_eq!(
            backoff_secs(3, 10 * 3600),
            10 * 3600,
            "never below one interval"
        );
        assert_eq!(backoff_secs(0, 60), 60);
    }
}
