//! Running a hook's action: cfn-hup runs `action` through the shell, or with `runas` as
//! `['su', runas, '-c', action]` (update_hooks.py:665-669@25fabe91; `ProcessHelper` uses
//! `shell=True` for a string, util.py:591-597), with its own environment plus the `CFN_*`
//! values. Ours goes through the one process runner ([`crate::sys::process`]), in a process
//! group (and cgroup, where writable) of its own so that a stop can take all it started, and its
//! output is logged line by line with the hook's name (cfn-hup logs it at debug, after the end).

use std::future::Future;
use std::time::Duration;

use crate::sys::process::{Cmd, Failed, Isolation, Output, Runner};

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Exit code, or `None` when a signal ended it or it could not be started.
    Failed {
        exit_code: Option<i32>,
        why: String,
    },
    /// The daemon was stopped and the action outlived [`STOP_GRACE`]: its group was killed.
    Killed,
}

/// How long a running action may go on after SIGTERM before its process group is killed:
/// below systemd's `TimeoutStopSec` in systemd/ecs-bootstrap-hup.service (90 s), so that the
/// daemon still saves its state and exits by itself.
pub const STOP_GRACE: Duration = Duration::from_secs(60);

/// The command for `action` (as `runas` when given).
pub fn command(action: &str, runas: Option<&str>, env: &[(String, String)]) -> Cmd {
    let argv: Vec<&str> = match runas {
        Some(user) => vec!["su", user, "-c", action],
        None => vec!["/bin/sh", "-c", action],
    };
    let mut cmd = Cmd::new(argv).output(Output::Files);
    cmd.isolation = Isolation::Cgroup;
    cmd.env = env.to_vec();
    cmd
}

/// Runs `cmd` for hook `hook`. `stopped` resolves [`STOP_GRACE`] after the daemon was asked to
/// stop (never, in `--once`): the action is then dropped, which kills its group.
pub async fn run(
    runner: &dyn Runner,
    hook: &str,
    cmd: &Cmd,
    stopped: impl Future<Output = ()>,
) -> Outcome {
    let finished = tokio::select! {
        r = runner.run(cmd) => r,
        () = stopped => {
            tracing::warn!(hook, grace_secs = STOP_GRACE.as_secs(), "stopping: the action outlived the grace period; its process group was killed");
            return Outcome::Killed;
        }
    };
    match finished {
        Ok(f) => {
            for (stream, text) in [("stdout", &f.stdout), ("stderr", &f.stderr)] {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::info!(hook, stream, "{line}");
                }
            }
            if f.success() {
                Outcome::Succeeded
            } else {
                Outcome::Failed {
                    exit_code: f.code,
                    why: f.describe(),
                }
            }
        }
        Err(e) => Outcome::Failed {
            exit_code: None,
            why: match e {
                Failed::Start(e) => format!("could not be started: {e}"),
                Failed::OutputFile(e) | Failed::Wait(e) => format!("failed: {e}"),
                Failed::TimedOut { after, .. } => format!("timed out after {after:?}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{Fake, Reply};

    #[test]
    fn shell_or_su_as_cfn_hup() {
        let env = [("CFN_NEW_METADATA".to_string(), "{}".to_string())];
        let c = command("echo hi > /x", None, &env);
        assert_eq!(c.line(), "/bin/sh -c echo hi > /x");
        assert_eq!(c.env, env);
        assert_eq!(c.isolation, Isolation::Cgroup);
        let c = command("touch /x", Some("nobody"), &[]);
        assert_eq!(c.line(), "su nobody -c touch /x");
    }

    #[tokio::test]
    async fn exit_codes_and_the_stop() {
        let fake = Fake::scripted(|argv| {
            Some(if argv[2] == "ok" {
                Reply::Exit(0, String::new())
            } else {
                Reply::Exit(3, "bad".into())
            })
        });
        let never = std::future::pending::<()>;
        let ok = run(&fake, "h", &command("ok", None, &[]), never()).await;
        assert_eq!(ok, Outcome::Succeeded);
        match run(&fake, "h", &command("no", None, &[]), never()).await {
            Outcome::Failed { exit_code, .. } => assert_eq!(exit_code, Some(3)),
            o => panic!("{o:?}"),
        }
        // A real action that outlives the stop is killed.
        let real = crate::sys::process::Real;
        let o = run(&real, "h", &command("sleep 30", None, &[]), async {}).await;
        assert_eq!(o, Outcome::Killed);
    }
}
