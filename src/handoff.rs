//! Running from UserData: configure here, then hand the wait to a transient systemd unit.
//!
//! `ecs.service` is ordered `After=cloud-final.service`, and cloud-final is the unit that runs
//! UserData. `systemctl start --no-block ecs` returns at once, but the start job itself still
//! waits for cloud-final to finish — which is waiting for us to see the agent register. Waiting
//! for the join in the foreground from UserData therefore deadlocks until the timeout.
//!
//! So under cloud-final the run configures the instance in the foreground (identity, metadata,
//! Init, ecs.config, the logs config: exactly what a classic UserData did before the agent
//! started), writes what the rest needs to [`FILE`], and re-launches itself with `systemd-run`
//! as a unit of its own (not ordered after cloud-final) that starts the services, waits for
//! the join and signals. cloud-final ends, and ecs starts with its config already in place —
//! never with a default config it would register into the `default` cluster with.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::Root;
use crate::join::JoinSpec;
use crate::services::ServiceAction;

/// Read instead of `/proc/self/cgroup` when set: lets the tests put a process "in cloud-final".
pub const CGROUP_FILE_ENV: &str = "ECS_BOOTSTRAP_CGROUP_FILE";
pub const UNIT: &str = "ecs-bootstrap-boot";
/// What the configuring run hands to the unit (0600 in the 0700 state directory).
pub const FILE: &str = "/var/lib/ecs-bootstrap/handoff.json";
/// The flag the unit's command line carries; hidden from `--help`.
pub const RESUME_FLAG: &str = "--after-handoff";

/// Everything the second half of the run needs, decided by the first half.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handoff {
    /// Who signals what; flattened, so the file reads as before.
    #[serde(flatten)]
    pub target: crate::boot::Target,
    pub region: String,
    pub services: Vec<ServiceAction>,
    pub join: JoinSpec,
    /// The run's deadline as wall-clock time: the unit gets what the first half left of it.
    pub deadline_unix_ms: u64,
    /// The configuring process, for the log.
    pub pid: u32,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Handoff {
    /// `left`: what remains of the run's deadline now.
    pub fn deadline_after(left: Duration) -> u64 {
        unix_ms(SystemTime::now() + left)
    }

    /// What remains of the deadline for the unit; zero when it has passed.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(
            self.deadline_unix_ms
                .saturating_sub(unix_ms(SystemTime::now())),
        )
    }

    pub fn save(&self, root: &Root) -> Result<()> {
        crate::state::write_private_json(root, FILE, self)
    }

    /// Reads and removes the file: one hand-off is resumed once.
    pub fn take(root: &Root) -> Result<Handoff> {
        let path = root.map(FILE)?;
        let text = root.read_to_string(FILE).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "{RESUME_FLAG}: nothing was handed off ({} does not exist); run without {RESUME_FLAG}",
                    path.display()
                ))
            } else {
                Error::io("read", &path, e)
            }
        })?;
        let handoff: Handoff = serde_json::from_str(&text).map_err(|e| Error::Invalid {
            path: path.display().to_string(),
            message: format!("not a hand-off written by this version: {e}"),
        })?;
        root.remove(FILE)
            .map_err(|e| Error::io("remove", &path, e))?;
        Ok(handoff)
    }
}

/// Environment passed on to the transient unit: systemd does not give a unit its caller's
/// environment, and endpoint overrides, proxies and credentials must survive the hand-off.
const PASSED_ENV_PREFIXES: &[&str] = &["AWS_", "ECS_BOOTSTRAP_", "FAKE_SYSTEMD_"];
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// True when this process's cgroup is cloud-final's (v1 or v2 layout).
pub fn in_cloud_final(cgroup: &str) -> bool {
    cgroup.lines().any(|line| {
        line.rsplit(':')
            .next()
            .is_some_and(|path| path.split('/').any(|part| part == "cloud-final.service"))
    })
}

pub fn under_cloud_final() -> bool {
    let path = std::env::var_os(CGROUP_FILE_ENV).unwrap_or_else(|| "/proc/self/cgroup".into());
    std::fs::read_to_string(path)
        .map(|text| in_cloud_final(&text))
        .unwrap_or(false)
}

/// The `systemd-run` command line that resumes this invocation in the foreground.
pub fn command_line(exe: OsString, args: &[OsString], env: &[(String, String)]) -> Vec<OsString> {
    let mut cmd: Vec<OsString> = [
        "systemd-run",
        "--unit",
        UNIT,
        "--description",
        "ecs-bootstrap: join the ECS cluster and signal CloudFormation",
        "--no-block",
        "--collect",
        "--property=StandardOutput=journal+console",
        "--property=StandardError=journal+console",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    for (k, v) in env {
        cmd.push(format!("--setenv={k}={v}").into());
    }
    cmd.push("--".into());
    cmd.push(exe);
    cmd.extend(args.iter().cloned());
    cmd.push("--foreground".into());
    cmd.push(RESUME_FLAG.into());
    cmd
}

/// Never passed: a transient unit's environment is readable by any local user through its
/// properties (`systemctl show`). The unit uses the instance role (or a credentials file).
const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

fn passed_env() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars() {
        if SECRET_ENV.contains(&k.as_str()) {
            tracing::warn!(variable = %k, "not passed to the transient unit (its environment is world-readable); it will use the instance role or the credentials file");
            continue;
        }
        let wanted = PASSED_ENV.contains(&k.as_str())
            || PASSED_ENV_PREFIXES.iter().any(|p| k.starts_with(p));
        if wanted && k != CGROUP_FILE_ENV {
            out.push((k, v));
        }
    }
    out
}

/// Starts the transient unit; the caller exits 0 afterwards.
pub fn hand_off(args: &[OsString]) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find own executable", "/proc/self/exe", e))?;
    let cmd = command_line(exe.into_os_string(), args, &passed_env());
    let shown =
        format!("systemd-run --unit {UNIT} --no-block ... -- ecs-bootstrap ... --foreground");
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Systemctl {
            command: shown.clone(),
            outcome: format!("could not be run: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Systemctl {
            command: shown,
            outcome: format!(
                "exited with {}: {}",
                out.status
                    .code()
                    .map_or("a signal".into(), |c| c.to_string()),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_cloud_final_in_v1_and_v2_cgroups() {
        assert!(in_cloud_final("0::/system.slice/cloud-final.service\n"));
        assert!(in_cloud_final(
            "12:pids:/system.slice/cloud-final.service\n1:name=systemd:/system.slice/cloud-final.service\n"
        ));
        assert!(!in_cloud_final("0::/system.slice/ecs-bootstrap.service\n"));
        assert!(!in_cloud_final(
            "0::/user.slice/user-0.slice/session-1.scope\n"
        ));
        assert!(!in_cloud_final("0::/system.slice/cloud-final.service.d\n"));
        assert!(!in_cloud_final(""));
    }

    #[test]
    fn command_line_reruns_in_the_foreground_with_the_environment() {
        let cmd = command_line(
            "/usr/bin/ecs-bootstrap".into(),
            &["run".into(), "--stack".into(), "s".into()],
            &[("AWS_REGION".into(), "eu-west-1".into())],
        );
        let cmd: Vec<String> = cmd.into_iter().map(|s| s.into_string().unwrap()).collect();
        assert_eq!(cmd[0], "systemd-run");
        assert!(cmd.contains(&"--no-block".to_string()));
        assert!(cmd.contains(&"--setenv=AWS_REGION=eu-west-1".to_string()));
        let dd = cmd.iter().position(|a| a == "--").unwrap();
        assert_eq!(
            &cmd[dd + 1..],
            [
                "/usr/bin/ecs-bootstrap",
                "run",
                "--stack",
                "s",
                "--foreground",
                "--after-handoff"
            ]
        );
    }
}
