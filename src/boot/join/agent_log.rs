//! While waiting for the join: what the ECS agent and ecs-init wrote to their logs since the
//! services were started.
//!
//! systemd cannot tell us why an agent does not register. ecs-init runs the agent container
//! inside its own process and restarts it on every exit but 0 and 5, forever, after a backoff of
//! 0.5 s doubling to 15 s (`ecs-init/engine/engine.go:46-50,293-340@8dfceca6`); so `ecs.service`
//! stays active and its `NRestarts`/`ExecMainStatus` do not move. The evidence is in two files
//! (shared reference.md §4):
//! - `/var/log/ecs/ecs-init.log`: `Agent exited with code N` for every exit of the agent
//!   (`engine.go:313`), in ecs-init's logfmt (`level=info time=... msg="Agent exited with code 1"`,
//!   `ecs-init/logger/log.go:77-80`);
//! - `/var/log/ecs/ecs-agent.log` (ecs-init mounts /var/log/ecs at the agent's /log and sets
//!   ECS_LOGFILE=/log/ecs-agent.log, `ecs-init/docker/docker.go:313-326`): the agent's own lines,
//!   logfmt by default (`level=error time=... msg="..." error="..."`,
//!   `ecs-agent/logger/log.go:100-124`) or JSON with ECS_LOG_OUTPUT_FORMAT=json. Matching is on
//!   the message text only, so both formats are read alike.
//!
//! The agent's own words for "registration cannot succeed" are terminal lines:
//! `Received terminal error from RegisterContainerInstance call, exiting`
//! (`ecs-agent/api/ecs/client/ecs_client.go:268`; a missing cluster, AccessDenied, ...: exit 1,
//! restarted by ecs-init) and `Agent will terminally exit, unable to register container
//! instance` (`agent/app/agent.go:504`: exit 5, ecs-init exits 5 too). One of them ends the wait
//! with that line and the exit code ecs-init logged after it. Other exits (docker not up yet, a
//! transient IMDS error) may heal on the restart: they are counted and reported if the wait
//! times out, but do not end it.
//!
//! Only what was appended after [`AgentLogs::from_now`] is read: an older boot's errors (the
//! agent started at boot before ecs.config was written) are not this run's.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::sys::fs::Root;

pub const AGENT_LOG: &str = "/var/log/ecs/ecs-agent.log";
pub const INIT_LOG: &str = "/var/log/ecs/ecs-init.log";

/// After a terminal line, how long ecs-init gets to log the exit code before the failure is
/// reported without it (the agent exits right after the line; ecs-init logs at once).
pub const EXIT_GRACE: Duration = Duration::from_secs(3);

/// At most this much of a log is read per poll (a runaway log must not stall the wait).
const READ_CAP: u64 = 1 << 20;
/// A reason stays readable: longer lines are cut.
const LINE_CAP: usize = 800;

const TERMINAL: &[&str] = &[
    // ecs_client.go:268: not a transient error (ThrottlingException, ServerException,
    // LimitExceededException are, `isTransientError`, :1083-1101); exit 1, or 5 for
    // InvalidParameter/Client/Attribute errors (agent.go:876-905).
    "Received terminal error from RegisterContainerInstance call",
    // agent.go:504: exit 5 (exitcodes.ExitTerminal).
    "Agent will terminally exit",
];

/// The new complete lines of one file since the last read.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    offset: u64,
    /// The file read last time; another inode means it was rotated: read the new one whole.
    ino: Option<u64>,
    partial: Vec<u8>,
}

impl Tail {
    fn from_end(path: PathBuf) -> Tail {
        let meta = std::fs::metadata(&path).ok();
        Tail {
            offset: meta.as_ref().map_or(0, |m| m.len()),
            ino: meta.map(|m| m.ino()),
            path,
            partial: Vec::new(),
        }
    }

    fn read(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(meta) = file.metadata() else {
            return Vec::new();
        };
        if self.ino != Some(meta.ino()) || meta.len() < self.offset {
            // Created, rotated or truncated since: everything in it is new.
            self.ino = Some(meta.ino());
            self.offset = 0;
            self.partial.clear();
        }
        if meta.len() == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let n = match file.take(READ_CAP).read_to_end(&mut buf) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&complete)
            .lines()
            .map(|l| cut(l.trim_end()))
            .filter(|l| !l.is_empty())
            .collect()
    }
}

fn cut(line: &str) -> String {
    match line.char_indices().nth(LINE_CAP) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// `Agent exited with code N` (engine.go:313) → N.
pub fn exit_code(line: &str) -> Option<i32> {
    let rest = &line[line.find("Agent exited with code ")? + "Agent exited with code ".len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

pub fn is_terminal(line: &str) -> bool {
    TERMINAL.iter().any(|t| line.contains(t))
}

/// An error-level line of the agent, logfmt or JSON.
pub fn is_error(line: &str) -> bool {
    ["level=error", "level=critical", "level=crit"]
        .iter()
        .any(|l| line.starts_with(l) || line.contains(&format!(" {l} ")))
        || line.contains("\"level\":\"error\"")
        || line.contains("\"level\":\"critical\"")
}

/// What to do about a terminal line, from the error the agent quoted in it.
pub fn hint(line: &str, cluster: &str) -> String {
    if line.contains("ClusterNotFoundException") {
        format!("the cluster '{cluster}' does not exist in this region: create it, or fix the ecs-bootstrap block's `Cluster` (ECS_CLUSTER)")
    } else if crate::aws::is_denied(line) {
        "the instance role may not register the instance: grant it ecs:RegisterContainerInstance (AmazonEC2ContainerServiceforEC2Role does)".to_string()
    } else if line.contains("ttribute") {
        "check ECS_INSTANCE_ATTRIBUTES (names and values the ECS API accepts)".to_string()
    } else {
        "see /var/log/ecs/ecs-agent.log".to_string()
    }
}

/// The two logs, read since the services were started.
#[derive(Debug)]
pub struct AgentLogs {
    agent: Tail,
    init: Tail,
    cluster: String,
    /// Every `Agent exited with code N` since the start, in order.
    exits: Vec<i32>,
    last_error: Option<String>,
    /// A terminal line, how many exits had been seen before it, and when it was read.
    terminal: Option<(String, usize, Instant)>,
}

impl AgentLogs {
    /// Call right before the services are started: only lines written after this count.
    pub fn from_now(root: &Root, cluster: &str) -> Result<AgentLogs> {
        Ok(AgentLogs {
            agent: Tail::from_end(root.map(AGENT_LOG)?),
            init: Tail::from_end(root.map(INIT_LOG)?),
            cluster: cluster.to_string(),
            exits: Vec::new(),
            last_error: None,
            terminal: None,
        })
    }

    /// Reads what was appended. The agent's log first: it writes its last words before it
    /// exits, ecs-init logs the exit after.
    pub fn read(&mut self) {
        for line in self.agent.read() {
            if self.terminal.is_none() && is_terminal(&line) {
                tracing::debug!(line, "terminal line in the ECS agent's log");
                self.terminal = Some((line.clone(), self.exits.len(), Instant::now()));
            }
            if is_error(&line) {
                self.last_error = Some(line);
            }
        }
        for line in self.init.read() {
            if let Some(code) = exit_code(&line) {
                tracing::info!(code, "ecs-init: the ECS agent exited");
                self.exits.push(code);
            }
        }
    }

    /// How many times the agent exited since the start (ecs-init.log).
    pub fn exits(&self) -> usize {
        self.exits.len()
    }

    /// The failure to end the wait with: a terminal line, once ecs-init logged the exit that
    /// followed it (or [`EXIT_GRACE`] passed without).
    pub fn verdict(&self, now: Instant) -> Option<Error> {
        let (line, before, seen) = self.terminal.as_ref()?;
        let exit = self.exits.get(*before).copied();
        if exit.is_none() && now < *seen + EXIT_GRACE {
            return None;
        }
        Some(Error::AgentTerminal {
            line: line.clone(),
            exit,
            hint: hint(line, &self.cluster),
        })
    }

    /// For a reason that has no better cause (a timeout, a failed unit): the exits and the
    /// agent's last error line, or "" when the logs say nothing.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(last) = self.exits.last() {
            parts.push(format!(
                "the agent exited {} time{} since the services were started, last with code {last} (ecs-init.log; ecs-init restarts it on every code but 0 and 5)",
                self.exits.len(),
                if self.exits.len() == 1 { "" } else { "s" }
            ));
        }
        if let Some(line) = &self.last_error {
            parts.push(format!("its last error: {line}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // Lines as the real programs write them (formats: ecs-agent/logger/log.go:100-124,
    // ecs-init/logger/log.go:77-80@8dfceca6; the error text as measured against moto).
    const TERMINAL_LINE: &str = r#"level=error time=2026-01-01T00:00:01Z msg="Received terminal error from RegisterContainerInstance call, exiting" error="operation error ECS: RegisterContainerInstance, https response error StatusCode: 400, RequestID: 1, api error ClusterNotFoundException: Cluster not found." module=ecs_client.go"#;
    const EXIT_1: &str = r#"level=info time=2026-01-01T00:00:02Z msg="Agent exited with code 1""#;

    fn append(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn exit_codes_and_kinds_of_line() {
        assert_eq!(exit_code(EXIT_1), Some(1));
        assert_eq!(exit_code("msg=\"Agent exited with code 137\""), Some(137));
        assert_eq!(exit_code("Agent exited"), None);
        assert!(is_terminal(TERMINAL_LINE) && is_error(TERMINAL_LINE));
        assert!(is_error(
            r#"{"level":"error","time":"t","msg":"Error registering container instance"}"#
        ));
        assert!(!is_error(EXIT_1));
        assert!(hint(TERMINAL_LINE, "prod").contains("'prod' does not exist"));
    }

    #[tokio::test]
    async fn only_new_lines_count_and_a_terminal_line_waits_for_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let agent = root.map(AGENT_LOG).unwrap();
        let init = root.map(INIT_LOG).unwrap();
        // An earlier boot's failure is not this run's.
        append(&agent, &format!("{TERMINAL_LINE}\n"));
        append(&init, &format!("{EXIT_1}\n"));
        let mut logs = AgentLogs::from_now(&root, "prod").unwrap();
        logs.read();
        assert_eq!((logs.exits(), logs.summary().as_str()), (0, ""));
        assert!(logs.verdict(Instant::now()).is_none());

        // Half a line is not a line.
        append(&agent, &TERMINAL_LINE[..40]);
        logs.read();
        assert!(logs.verdict(Instant::now() + EXIT_GRACE * 2).is_none());
        append(&agent, &format!("{}\n", &TERMINAL_LINE[40..]));
        logs.read();
        // Seen, but ecs-init has not logged the exit yet: wait for it, within the grace.
        assert!(logs.verdict(Instant::now()).is_none());
        append(&init, &format!("{EXIT_1}\n"));
        logs.read();
        let e = logs.verdict(Instant::now()).expect("terminal").to_string();
        for want in [
            "exit code 1",
            "ClusterNotFoundException: Cluster not found.",
            "Received terminal error",
            "'prod' does not exist",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert_eq!(logs.exits(), 1);
    }

    #[tokio::test]
    async fn without_an_exit_line_the_grace_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut logs = AgentLogs::from_now(&root, "c").unwrap();
        append(&root.map(AGENT_LOG).unwrap(), &format!("{TERMINAL_LINE}\n"));
        logs.read();
        let e = logs
            .verdict(Instant::now() + EXIT_GRACE)
            .expect("after the grace")
            .to_string();
        assert!(e.contains("had not logged its exit code"), "{e}");
    }

    #[test]
    fn exits_without_a_terminal_line_are_summarised_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut logs = AgentLogs::from_now(&root, "c").unwrap();
        append(
            &root.map(AGENT_LOG).unwrap(),
            "level=error time=t msg=\"Unable to get mac address\" module=agent.go\n",
        );
        append(
            &root.map(INIT_LOG).unwrap(),
            &format!("{EXIT_1}\n{}\n", EXIT_1.replace("code 1", "code 137")),
        );
        logs.read();
        assert!(logs.verdict(Instant::now() + EXIT_GRACE * 2).is_none());
        let s = logs.summary();
        assert!(
            s.contains("exited 2 times") && s.contains("last with code 137"),
            "{s}"
        );
        assert!(s.contains("Unable to get mac address"), "{s}");
    }

    #[test]
    fn a_rotated_log_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let init = root.map(INIT_LOG).unwrap();
        append(
            &init,
            "old line, long enough to be longer than the new file\n",
        );
        let mut logs = AgentLogs::from_now(&root, "c").unwrap();
        std::fs::rename(&init, init.with_extension("log.1")).unwrap();
        append(&init, &format!("{EXIT_1}\n"));
        logs.read();
        assert_eq!(logs.exits(), 1);
    }
}
