//! One poll: `HookProcessor.process` (update_hooks.py:619-679@25fabe91). Each hook in order:
//! its resource described (one DescribeStackResource per logical id per poll, as cfn-hup's
//! `_resource_cache`), the value at its path compared with the stored one ([`rules::decide`]),
//! and its action run when a trigger fires; the value stored when no trigger fires or the
//! action succeeds. A hook that cannot be processed (an AWS error, a path into a list) is logged
//! and skipped, as cfn-hup logs the exception and goes on with the next hook.
//!
//! Ours: actions run one at a time (the poll awaits each), a failed action is retried with the
//! per-hook backoff of [`Store::due`], and a stop request is honoured between hooks.

use std::collections::HashMap;

use super::action::{self, Outcome};
use super::cfn::Describe;
use super::conf::Hook;
use super::rules::{self, Decision, Resource};
use super::stop::Stop;
use super::store::{key, Store};
use crate::sys::process::Runner;

/// What a poll did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Actions run (succeeded or failed).
    pub ran: u32,
    pub failed: u32,
    /// Hooks not processed: the resource could not be described or the path not walked.
    pub errors: u32,
    /// Actions held back by their backoff.
    pub deferred: u32,
    /// A stop was requested: the hooks after the current one were not processed.
    pub stopped: bool,
}

/// The clock and pacing a poll needs.
pub struct Pace {
    pub interval_secs: u64,
    pub now_unix: fn() -> u64,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn poll<D: Describe>(
    hooks: &[Hook],
    cfn: &D,
    store: &mut Store,
    runner: &dyn Runner,
    pace: &Pace,
    stop: &Stop,
) -> Report {
    let mut report = Report::default();
    let mut cache: HashMap<String, Result<Resource, String>> = HashMap::new();
    for hook in hooks {
        if stop.requested() {
            report.stopped = true;
            break;
        }
        let id = &hook.target.logical_id;
        if !cache.contains_key(id) {
            let r = cfn.describe(id).await.map_err(|e| e.to_string());
            cache.insert(id.clone(), r);
        }
        let resource = match &cache[id] {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(hook = %hook.name, resource = %id, "{e}");
                report.errors += 1;
                continue;
            }
        };
        let found = match rules::value_at(&hook.target, resource) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(hook = %hook.name, "{e}");
                report.errors += 1;
                continue;
            }
        };
        let k = key(&hook.name, &hook.path);
        let old = store.old(&k);
        match rules::decide(&hook.triggers, &hook.target, old.as_ref(), found) {
            Decision::Skip(status) => {
                tracing::info!(hook = %hook.name, resource = %id, %status, "resource update in progress; skipped this poll");
            }
            Decision::Record(new) => {
                tracing::debug!(hook = %hook.name, path = %hook.path, "no change");
                store.record(&k, new.as_ref());
            }
            Decision::Run { trigger, env, new } => {
                let now = (pace.now_unix)();
                if !store.due(&k, new.as_ref(), now) {
                    let next = store.failure(&k).map(|f| f.next_try_unix).unwrap_or(now);
                    tracing::info!(hook = %hook.name, retry_in_secs = next.saturating_sub(now), "action failed before on this value; backing off");
                    report.deferred += 1;
                    continue;
                }
                tracing::info!(hook = %hook.name, trigger = trigger.name(), path = %hook.path, "running the action");
                let cmd = action::command(&hook.action, hook.runas.as_deref(), &env);
                report.ran += 1;
                match action::run(runner, &hook.name, &cmd, stop.grace_over()).await {
                    Outcome::Succeeded => {
                        tracing::info!(hook = %hook.name, "action succeeded");
                        store.record(&k, new.as_ref());
                    }
                    Outcome::Failed { exit_code, why } => {
                        report.failed += 1;
                        let f = store.fail(
                            &k,
                            new.as_ref(),
                            exit_code,
                            (pace.now_unix)(),
                            pace.interval_secs,
                        );
                        tracing::warn!(hook = %hook.name, exit_code = ?exit_code, attempts = f.attempts, next_try_unix = f.next_try_unix, "action {why}; will retry");
                    }
                    Outcome::Killed => {
                        report.failed += 1;
                        store.fail(
                            &k,
                            new.as_ref(),
                            None,
                            (pace.now_unix)(),
                            pace.interval_secs,
                        );
                    }
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Result};
    use crate::hup::rules::HookPath;
    use crate::sys::process::{Fake, Reply};
    use serde_json::{json, Value as Json};
    use std::sync::Mutex;

    /// Answers from a map logical id -> Metadata (or an error), counting calls.
    struct Stub {
        metadata: Mutex<HashMap<String, Option<Json>>>,
        status: Mutex<String>,
        calls: Mutex<Vec<String>>,
    }

    impl Stub {
        fn new(pairs: &[(&str, Option<Json>)]) -> Stub {
            Stub {
                metadata: Mutex::new(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                ),
                status: Mutex::new("CREATE_COMPLETE".into()),
                calls: Mutex::new(vec![]),
            }
        }
        fn set(&self, id: &str, m: Option<Json>) {
            self.metadata.lock().unwrap().insert(id.into(), m);
        }
    }

    impl Describe for Stub {
        async fn describe(&self, id: &str) -> Result<Resource> {
            self.calls.lock().unwrap().push(id.to_string());
            match self.metadata.lock().unwrap().get(id) {
                None => Err(Error::Aws {
                    api: "cloudformation:DescribeStackResource",
                    message: "ValidationError: no such resource".into(),
                }),
                Some(m) => Ok(Resource {
                    status: Some(self.status.lock().unwrap().clone()),
                    metadata: m.clone(),
                    physical_id: Some("p".into()),
                    last_updated: None,
                }),
            }
        }
    }

    fn hook(name: &str, triggers: &str, path: &str, action: &str) -> Hook {
        Hook {
            name: name.into(),
            triggers: triggers.split(',').map(|t| t.trim().to_string()).collect(),
            path: path.into(),
            target: HookPath::parse(path).unwrap(),
            action: action.into(),
            runas: None,
            origin: "hooks.conf:1".into(),
        }
    }

    const PACE: Pace = Pace {
        interval_secs: 60,
        now_unix: || 1000,
    };

    #[tokio::test]
    async fn add_update_remove_and_one_call_per_resource() {
        let hooks = [
            hook(
                "a",
                "post.add,post.update,post.remove",
                "Resources.LC.Metadata.app",
                "act-a",
            ),
            hook("b", "post.update", "Resources.LC.Metadata.other", "act-b"),
        ];
        let stub = Stub::new(&[("LC", Some(json!({"app": {"v": 1}, "other": 1})))]);
        let mut store = Store::default();
        let fake = Fake::default();
        let stop = Stop::default();
        // First poll: a's post.add fires; b records (post.update needs a stored value).
        let r = poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!((r.ran, r.failed), (1, 0));
        assert_eq!(
            stub.calls.lock().unwrap().len(),
            1,
            "one call per resource per poll"
        );
        assert_eq!(fake.lines(), ["/bin/sh -c act-a"]);
        let env = &fake.calls()[0].env;
        assert_eq!(
            env,
            &[("CFN_NEW_METADATA".to_string(), "{\"v\": 1}".to_string())]
        );
        // No change: nothing runs.
        let r = poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!(r.ran, 0);
        // Only a's path changes: only a runs, with old and new.
        stub.set("LC", Some(json!({"app": {"v": 2}, "other": 1})));
        poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!(fake.calls().len(), 2);
        let env = &fake.calls()[1].env;
        assert_eq!(env[0], ("CFN_OLD_METADATA".into(), "{\"v\": 1}".into()));
        assert_eq!(env[1], ("CFN_NEW_METADATA".into(), "{\"v\": 2}".into()));
        // Removed: post.remove, with the old value only.
        stub.set("LC", Some(json!({"other": 1})));
        poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!(fake.calls().len(), 3);
        assert_eq!(fake.calls()[2].env.len(), 1);
        assert_eq!(fake.calls()[2].env[0].0, "CFN_OLD_METADATA");
    }

    #[tokio::test]
    async fn a_failure_is_retried_with_backoff_and_in_progress_skips() {
        let hooks = [hook("a", "post.add", "Resources.LC.Metadata", "act")];
        let stub = Stub::new(&[("LC", Some(json!({"k": 1})))]);
        let mut store = Store::default();
        let fake = Fake::default().then(Reply::Exit(2, String::new()));
        let stop = Stop::default();
        let r = poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!((r.ran, r.failed), (1, 1));
        let f = store
            .failure("a|Resources.LC.Metadata")
            .expect("the failure is kept");
        assert_eq!(
            (f.exit_code, f.attempts, f.next_try_unix),
            (Some(2), 1, 1060)
        );
        assert!(
            store.old("a|Resources.LC.Metadata").is_none(),
            "not stored on failure"
        );
        // Not yet due: deferred.
        let r = poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!((r.ran, r.deferred), (0, 1));
        // In progress: skipped, nothing stored.
        *stub.status.lock().unwrap() = "UPDATE_IN_PROGRESS".into();
        let later = Pace {
            interval_secs: 60,
            now_unix: || 2000,
        };
        let r = poll(&hooks, &stub, &mut store, &fake, &later, &stop).await;
        assert_eq!((r.ran, r.deferred), (0, 0));
        // Due again: runs and succeeds (the queue is empty: exit 0).
        *stub.status.lock().unwrap() = "UPDATE_COMPLETE".into();
        let r = poll(&hooks, &stub, &mut store, &fake, &later, &stop).await;
        assert_eq!((r.ran, r.failed), (1, 0));
        assert!(store.failure("a|Resources.LC.Metadata").is_none());
        assert!(store.old("a|Resources.LC.Metadata").is_some());
    }

    #[tokio::test]
    async fn errors_skip_the_hook_and_a_stop_ends_the_poll() {
        let hooks = [
            hook("missing", "post.add", "Resources.Nope.Metadata", "x"),
            hook("list", "post.add", "Resources.LC.Metadata.l.k", "x"),
            hook("ok", "post.add", "Resources.LC.Metadata", "y"),
        ];
        let stub = Stub::new(&[("LC", Some(json!({"l": ["k"]})))]);
        let mut store = Store::default();
        let fake = Fake::default();
        let stop = Stop::default();
        let r = poll(&hooks, &stub, &mut store, &fake, &PACE, &stop).await;
        assert_eq!((r.errors, r.ran), (2, 1));
        stop.request();
        let mut fresh = Store::default();
        let r = poll(&hooks, &stub, &mut fresh, &fake, &PACE, &stop).await;
        assert!(r.stopped && r.ran == 0);
    }
}
