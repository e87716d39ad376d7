//! Step 4: docker, ecs and the CloudWatch agent, through the `systemctl` on PATH.
//!
//! Never a blocking start: ecs.service is ordered after cloud-final.service, so a blocking
//! `systemctl start ecs` from UserData waits for itself forever (amazon-ecs-agent #1707).
//! Every call is bounded, because a wedged systemd must end in a FAILURE signal, not a hang.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys::systemctl;
pub use crate::sys::systemctl::Systemctl;

pub const DOCKER: &str = "docker.service";
pub const ECS: &str = "ecs.service";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceAction {
    pub unit: String,
    /// An optional unit that is not installed is a warning, not a failure.
    pub required: bool,
    /// Its configuration changed: a running unit is restarted (`try-restart`), or it would go
    /// on with the old one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_if_running: bool,
}

/// What a call's failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Any failure is logged and the sequence goes on.
    Warn,
    /// Its exit code does not matter; a systemctl that cannot run or answer does.
    Runs,
    /// It must exit 0: a failure ends this unit's start (and the run, for a required unit).
    Succeeds,
}

/// The calls that start one unit, in order: what [`start`] executes and the plan prints.
pub fn calls(action: &ServiceAction) -> Vec<(Check, Vec<String>)> {
    let unit = action.unit.as_str();
    let mut out = Vec::new();
    if action.restart_if_running {
        // Restarts the unit only if it runs; a stopped one is started below with the new
        // configuration anyway. --no-block: never wait on a job from UserData.
        out.push((Check::Warn, systemctl::try_restart_no_block(unit)));
    }
    // A failure left from an earlier start (e.g. ecs started at boot before ecs.config was
    // written, exit 5) must not be read as this start's failure by the join's unit watch.
    // Its own exit code is irrelevant: a unit that never failed has nothing to reset.
    out.push((Check::Runs, systemctl::reset_failed(unit)));
    out.push((Check::Succeeds, systemctl::verb("enable", unit)));
    out.push((Check::Succeeds, systemctl::start_no_block(unit)));
    out
}

pub async fn start(actions: &[ServiceAction], systemctl: &Systemctl) -> Result<()> {
    for action in actions {
        match start_one(action, systemctl).await {
            Ok(()) => tracing::info!(unit = %action.unit, "enabled and started (--no-block)"),
            Err(e) if !action.required => {
                tracing::warn!(unit = %action.unit, error = %e, "optional unit not started")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn start_one(action: &ServiceAction, systemctl: &Systemctl) -> Result<()> {
    for (check, argv) in calls(action) {
        match check {
            Check::Warn => match systemctl.must(&argv).await {
                Ok(()) => {
                    tracing::info!(unit = %action.unit, "configuration changed: restarted if it was running (try-restart --no-block)")
                }
                Err(e) => {
                    tracing::warn!(unit = %action.unit, error = %e, "could not restart it for its new configuration")
                }
            },
            Check::Runs => {
                systemctl.call(&argv).await?;
            }
            Check::Succeeds => systemctl.must(&argv).await?,
        }
    }
    Ok(())
}

/// Waits for docker to be active: ecs.service needs it, and a docker that cannot start is the
/// most common reason an agent never registers, so it gets its own precise FAILURE.
pub async fn wait_active(
    systemctl: &Systemctl,
    unit: &str,
    deadline: tokio::time::Instant,
) -> Result<()> {
    loop {
        let state = systemctl.state(unit).await?;
        match state.as_str() {
            "active" => {
                tracing::info!(unit, "active");
                return Ok(());
            }
            "failed" => {
                return Err(Error::UnitFailed {
                    unit: unit.to_string(),
                    detail: format!("see `journalctl -u {unit}`"),
                })
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::UnitFailed {
                unit: unit.to_string(),
                detail: format!("still '{state}' when the time ran out"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{Fake, Reply};
    use std::sync::Arc;

    fn action(unit: &str, required: bool, restart_if_running: bool) -> ServiceAction {
        ServiceAction {
            unit: unit.into(),
            required,
            restart_if_running,
        }
    }

    #[tokio::test]
    async fn start_sequence_argv() {
        let fake = Arc::new(Fake::default());
        let actions = [
            action("amazon-cloudwatch-agent.service", false, true),
            action(DOCKER, true, false),
        ];
        start(&actions, &Systemctl::new(fake.clone()))
            .await
            .unwrap();
        assert_eq!(
            fake.lines(),
            [
                "systemctl try-restart --no-block amazon-cloudwatch-agent.service",
                "systemctl reset-failed amazon-cloudwatch-agent.service",
                "systemctl enable amazon-cloudwatch-agent.service",
                "systemctl start --no-block amazon-cloudwatch-agent.service",
                "systemctl reset-failed docker.service",
                "systemctl enable docker.service",
                "systemctl start --no-block docker.service",
            ]
        );
    }

    /// reset-failed's exit code is ignored; a failing enable stops a required unit's start
    /// (and the run), an optional unit's only with a warning.
    #[tokio::test]
    async fn a_failing_call() {
        let fake = Arc::new(Fake::scripted(|argv| match argv[1].as_str() {
            "reset-failed" => Some(Reply::Exit(1, String::new())),
            "enable" if argv[2] == "optional.service" || argv[2] == ECS => {
                Some(Reply::Exit(1, String::new()))
            }
            _ => None,
        }));
        let actions = [
            action("optional.service", false, false),
            action(DOCKER, true, false),
            action(ECS, true, false),
            action("never.service", true, false),
        ];
        let e = start(&actions, &Systemctl::new(fake.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(e, "`systemctl enable ecs.service` exited with 1");
        assert_eq!(
            fake.lines(),
            [
                "systemctl reset-failed optional.service",
                "systemctl enable optional.service",
                "systemctl reset-failed docker.service",
                "systemctl enable docker.service",
                "systemctl start --no-block docker.service",
                "systemctl reset-failed ecs.service",
                "systemctl enable ecs.service",
            ]
        );
    }

    /// A systemctl that does not answer ends the call at its bound, as a failure of the run.
    #[tokio::test(start_paused = true)]
    async fn a_timeout() {
        let fake = Arc::new(Fake::scripted(|argv| {
            (argv[1] == "enable").then_some(Reply::Hang)
        }));
        let t = tokio::time::Instant::now();
        let (actions, systemctl) = ([action(ECS, true, false)], Systemctl::new(fake.clone()));
        let started = start(&actions, &systemctl);
        // Without its own bound the call would wait forever: this one fails the test instead.
        let e = tokio::time::timeout(Duration::from_secs(600), started)
            .await
            .expect("the call is bounded")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "`systemctl enable ecs.service` did not answer within 30s"
        );
        assert_eq!(t.elapsed(), systemctl::CALL_TIMEOUT);
        assert_eq!(fake.lines().len(), 2);
    }
}
