//! Step 4: docker, ecs and the CloudWatch agent, through the `systemctl` on PATH.
//!
//! Never a blocking start: ecs.service is ordered after cloud-final.service, so a blocking
//! `systemctl start ecs` from UserData waits for itself forever (amazon-ecs-agent #1707).
//! Every call is bounded, because a wedged systemd must end in a FAILURE signal, not a hang.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys::process::{Cmd, Failed, Runner};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const PROGRAM: &str = "systemctl";

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

#[derive(Clone)]
pub struct Systemctl {
    runner: Arc<dyn Runner>,
}

struct Answer {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Systemctl {
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        Systemctl { runner }
    }

    async fn call(&self, args: &[&str]) -> Result<Answer> {
        let mut argv = vec![PROGRAM];
        argv.extend_from_slice(args);
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

    async fn must(&self, args: &[&str]) -> Result<()> {
        let a = self.call(args).await?;
        if a.success {
            Ok(())
        } else {
            Err(Error::Systemctl {
                command: format!("{PROGRAM} {}", args.join(" ")),
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
    }

    pub async fn enable_and_start(&self, unit: &str) -> Result<()> {
        // A failure left from an earlier start (e.g. ecs started at boot before ecs.config was
        // written, exit 5) must not be read as this start's failure by the join's unit watch.
        // Its own exit code is irrelevant: a unit that never failed has nothing to reset.
        let _ = self.call(&["reset-failed", unit]).await?;
        self.must(&["enable", unit]).await?;
        self.must(&["start", "--no-block", unit]).await
    }

    /// The unit's ActiveState as `is-active` prints it (active, activating, failed, ...).
    pub async fn state(&self, unit: &str) -> Result<String> {
        Ok(self.call(&["is-active", unit]).await?.stdout)
    }

    /// One property's value (`systemctl show -p PROP --value UNIT`), e.g. `ExecMainStatus`.
    pub async fn show(&self, unit: &str, property: &str) -> Result<String> {
        Ok(self
            .call(&["show", "-p", property, "--value", unit])
            .await?
            .stdout)
    }

    pub async fn is_failed(&self, unit: &str) -> Result<bool> {
        Ok(self.call(&["is-failed", unit]).await?.success)
    }
}

pub async fn start(actions: &[ServiceAction], systemctl: &Systemctl) -> Result<()> {
    for action in actions {
        if action.restart_if_running {
            // Restarts the unit only if it runs; a stopped one is started below with the new
            // configuration anyway. --no-block: never wait on a job from UserData.
            match systemctl
                .must(&["try-restart", "--no-block", &action.unit])
                .await
            {
                Ok(()) => {
                    tracing::info!(unit = %action.unit, "configuration changed: restarted if it was running (try-restart --no-block)")
                }
                Err(e) => {
                    tracing::warn!(unit = %action.unit, error = %e, "could not restart it for its new configuration")
                }
            }
        }
        match systemctl.enable_and_start(&action.unit).await {
            Ok(()) => tracing::info!(unit = %action.unit, "enabled and started (--no-block)"),
            Err(e) if !action.required => {
                tracing::warn!(unit = %action.unit, error = %e, "optional unit not started")
            }
            Err(e) => return Err(e),
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
