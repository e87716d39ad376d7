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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::boot::join::JoinSpec;
use crate::boot::services::ServiceAction;
use crate::error::{Error, Result};
use crate::sys::fs::Root;
use crate::sys::process::{Cmd, Failed, Runner};

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
    /// Sensitive environment (proxy URLs that may carry a password, credentials) the unit
    /// needs: carried in this 0600 file because a unit's `--setenv` is world-readable.
    #[serde(default)]
    pub env: Vec<(String, String)>,
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
        crate::boot::state::write_private_json(root, FILE, self)
    }

    /// Reads and removes the file: one hand-off is resumed once.
    pub fn take(root: &Root) -> Result<Handoff> {
        let path = root.map(FILE)?;
        let text = root.read_to_string(FILE).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NothingHandedOff { path: path.clone() }
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

/// Environment passed on to the transient unit on its command line: systemd does not give a
/// unit its caller's environment, and endpoint overrides must survive the hand-off. An
/// allow-list, because that command line and the unit's properties (`systemctl show`) are
/// readable by every local user: a variable not known to be harmless never goes there.
const PUBLIC_ENV_PREFIXES: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_EC2_METADATA_",
    "ECS_BOOTSTRAP_",
    "FAKE_SYSTEMD_",
];
const PUBLIC_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
];

/// Passed through the hand-off file (0600 in the 0700 state directory) instead: a proxy URL
/// may carry `user:password@`, and the rest are credentials.
const PRIVATE_ENV: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

fn is_public(k: &str) -> bool {
    // The cgroup override makes the unit believe it is in cloud-final: it would hand off again.
    k != CGROUP_FILE_ENV
        && (PUBLIC_ENV.contains(&k) || PUBLIC_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
}

/// Environment variables as (name, value).
pub type Vars = Vec<(String, String)>;

/// Splits `vars` into what goes on the `systemd-run` command line and what goes through the
/// hand-off file; anything in neither list is dropped.
pub fn split_env(vars: impl IntoIterator<Item = (String, String)>) -> (Vars, Vars) {
    let (mut public, mut private) = (Vec::new(), Vec::new());
    for (k, v) in vars {
        if PRIVATE_ENV.contains(&k.as_str()) {
            private.push((k, v));
        } else if is_public(&k) {
            public.push((k, v));
        }
    }
    (public, private)
}

/// The sensitive part of this process's environment, for [`Handoff::env`].
pub fn private_env() -> Vec<(String, String)> {
    split_env(std::env::vars()).1
}

impl Handoff {
    /// Gives the unit the sensitive environment its caller had. Called once, first thing after
    /// [`Handoff::take`], before any client that reads the environment is built.
    pub fn restore_env(&self) {
        for (k, v) in &self.env {
            if PRIVATE_ENV.contains(&k.as_str()) {
                std::env::set_var(k, v);
            }
        }
    }
}

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

/// Starts the transient unit; the caller exits 0 afterwards.
pub async fn hand_off(args: &[OsString], runner: &dyn Runner) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find own executable", "/proc/self/exe", e))?;
    let cmd = Cmd::new(command_line(
        exe.into_os_string(),
        args,
        &split_env(std::env::vars()).0,
    ));
    let shown =
        format!("systemd-run --unit {UNIT} --no-block ... -- ecs-bootstrap ... --foreground");
    let out = runner.run(&cmd).await.map_err(|f| Error::Systemctl {
        command: shown.clone(),
        outcome: match f {
            Failed::OutputFile(e) | Failed::Start(e) | Failed::Wait(e) => {
                format!("could not be run: {e}")
            }
            // No timeout is set: systemd-run --no-block returns once the job is queued.
            Failed::TimedOut { after, .. } => format!("did not answer within {after:?}"),
        },
    })?;
    if !out.success() {
        return Err(Error::Systemctl {
            command: shown,
            outcome: format!(
                "exited with {}: {}",
                out.code.map_or("a signal".into(), |c| c.to_string()),
                out.stderr.trim()
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
    fn only_allow_listed_names_reach_the_command_line_and_secrets_go_to_the_file() {
        let vars = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("HTTPS_PROXY", "http://user:pw@proxy:3128"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok-secret"),
            ("AWS_SECURITY_TOKEN", "legacy-secret"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_WHATEVER_NEW_SECRET", "x"),
            ("ECS_BOOTSTRAP_CGROUP_FILE", "/tmp/cg"),
            ("MY_APP_PASSWORD", "pw"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let (public, private) = split_env(vars);
        let names = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(&public), ["AWS_REGION", "AWS_ENDPOINT_URL"]);
        assert_eq!(
            names(&private),
            [
                "HTTPS_PROXY",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "AWS_SECURITY_TOKEN",
                "AWS_SECRET_ACCESS_KEY"
            ]
        );
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
