//! `systemctl`: the argv of each call this program makes (one builder per verb, so what a dry
//! run prints is what a run executes), and [`Systemctl`], which runs them through a
//! [`Runner`] with a bounded wait: a wedged systemd must end in a FAILURE signal, not a hang.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::process::{Cmd, Failed, Runner};

pub const PROGRAM: &str = "systemctl";

/// How long one [`Systemctl`] call may take. Only non-blocking verbs go through it (a start is
/// `--no-block`), so anything longer is a wedged systemd.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `systemctl ARGS...`.
pub fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once(PROGRAM)
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// `systemctl VERB UNIT` (enable, disable, start, stop, restart, reload-or-restart, ...).
pub fn verb(verb: &str, unit: &str) -> Vec<String> {
    argv(&[verb, unit])
}

/// Clears a failure left by an earlier start, so that it is not read as this start's.
pub fn reset_failed(unit: &str) -> Vec<String> {
    verb("reset-failed", unit)
}

/// Starts without waiting for the job: ecs.service is ordered after cloud-final.service, so a
/// blocking start from UserData waits for itself (amazon-ecs-agent #1707).
pub fn start_no_block(unit: &str) -> Vec<String> {
    argv(&["start", "--no-block", unit])
}

/// Restarts the unit only if it runs, without waiting for the job.
pub fn try_restart_no_block(unit: &str) -> Vec<String> {
    argv(&["try-restart", "--no-block", unit])
}

pub fn is_active(unit: &str) -> Vec<String> {
    verb("is-active", unit)
}

pub fn is_failed(unit: &str) -> Vec<String> {
    verb("is-failed", unit)
}

/// `systemctl show -p PROP --value UNIT`: one property's value.
pub fn show(unit: &str, property: &str) -> Vec<String> {
    argv(&["show", "-p", property, "--value", unit])
}

pub fn daemon_reload() -> Vec<String> {
    argv(&["daemon-reload"])
}

/// What a call answered; its exit code is the caller's to judge.
pub struct Answer {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the builders' argv, each within [`CALL_TIMEOUT`].
#[derive(Clone)]
pub struct Systemctl {
    runner: Arc<dyn Runner>,
}

impl Systemctl {
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Systemctl { runner }
    }

    /// Only a systemctl that cannot be run or does not answer in time is an error here.
    pub async fn call(&self, argv: &[String]) -> Result<Answer> {
        let command = argv.join(" ");
        let cmd = Cmd::new(argv).timeout(CALL_TIMEOUT);
        let out = self.runner.run(&cmd).await.map_err(|f| Error::Systemctl {
            command,
            outcome: match f {
                Failed::TimedOut { .. } => {
                    format!("did not answer within {}s", CALL_TIMEOUT.as_secs())
                }
                Failed::OutputFile(e) | Failed::Start(e) | Failed::Wait(e) => {
                    format!("could not be run: {e}")
                }
            },
        })?;
        Ok(Answer {
            success: out.success(),
            code: out.code,
            stdout: out.stdout.trim().to_string(),
            stderr: out.stderr.trim().to_string(),
        })
    }

    /// Like [`Systemctl::call`], but a non-zero exit is an error too.
    pub async fn must(&self, argv: &[String]) -> Result<()> {
        let a = self.call(argv).await?;
        if a.success {
            return Ok(());
        }
        Err(Error::Systemctl {
            command: argv.join(" "),
            outcome: format!(
                "exited with {}{}",
                a.code.map_or("a signal".to_string(), |c| c.to_string()),
                if a.stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.stderr)
                }
            ),
        })
    }

    /// The unit's ActiveState as `is-active` prints it (active, activating, failed, ...).
    pub async fn state(&self, unit: &str) -> Result<String> {
        Ok(self.call(&is_active(unit)).await?.stdout)
    }

    /// One property's value, e.g. `ExecMainStatus`.
    pub async fn show(&self, unit: &str, property: &str) -> Result<String> {
        Ok(self.call(&show(unit, property)).await?.stdout)
    }

    pub async fn is_failed(&self, unit: &str) -> Result<bool> {
        Ok(self.call(&is_failed(unit)).await?.success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{Fake, Reply};

    #[test]
    fn builders_spell_each_call() {
        let u = "ecs.service";
        for (argv, want) in [
            (reset_failed(u), "systemctl reset-failed ecs.service"),
            (verb("enable", u), "systemctl enable ecs.service"),
            (start_no_block(u), "systemctl start --no-block ecs.service"),
            (
                try_restart_no_block(u),
                "systemctl try-restart --no-block ecs.service",
            ),
            (is_active(u), "systemctl is-active ecs.service"),
            (is_failed(u), "systemctl is-failed ecs.service"),
            (
                show(u, "ExecMainStatus"),
                "systemctl show -p ExecMainStatus --value ecs.service",
            ),
            (daemon_reload(), "systemctl daemon-reload"),
        ] {
            assert_eq!(argv.join(" "), want);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_go_through_the_runner_bounded() {
        let fake = Arc::new(
            Fake::default()
                .then(Reply::Exit(3, " activating \n".into()))
                .then(Reply::Exit(1, String::new()))
                .then(Reply::Hang)
                .then(Reply::Missing),
        );
        let s = Systemctl::new(fake.clone());
        assert_eq!(s.state("docker.service").await.unwrap(), "activating");
        let e = s.must(&verb("enable", "x")).await.unwrap_err().to_string();
        assert!(e.contains("`systemctl enable x` exited with 1"), "{e}");
        let e = s.is_failed("x").await.unwrap_err().to_string();
        assert!(e.contains("did not answer within 30s"), "{e}");
        let e = s.show("x", "P").await.unwrap_err().to_string();
        assert!(e.contains("could not be run"), "{e}");
        assert!(fake.calls().iter().all(|c| c.timeout == Some(CALL_TIMEOUT)));
    }
}
