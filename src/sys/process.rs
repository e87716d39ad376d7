//! The one way this program starts another: an argv (no shell unless the argv is one), its
//! environment and directory, stdin from /dev/null, output captured or into files, optionally a
//! process group and cgroup of its own ([`super::cgroup`]), and a timeout.
//!
//! Behind [`Runner`] so that a test can drive the boot sequence, Init and the hand-off with a
//! [`Fake`] that records every call and answers as scripted, instead of starting tools.

use std::ffi::OsString;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use super::cgroup::{self, CommandCgroup};

/// How much of a finished tool's output a failure quotes (the reason must fit a CloudFormation
/// signal, and the end of the output is where the error is).
pub const TAIL_BYTES: usize = 400;

/// Where the output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Pipes, read to the end: for tools that never leave a process behind (systemctl).
    Pipes,
    /// stdout and stderr each into an anonymous file: `service x start` may leave a daemon
    /// holding them open, which would hang a reader of a pipe.
    Files,
    /// Both into one anonymous file, interleaved as written; only its tail is read.
    OneFile,
}

/// What else goes when the process is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Nothing: the process alone (`kill_on_drop`).
    None,
    /// A process group of its own and, where cgroup v2 is writable, a cgroup of its own: a
    /// timeout or a cancellation kills all it started, `setsid` children included; once it has
    /// finished by itself, what it left running stays.
    Cgroup,
}

/// One process to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub argv: Vec<OsString>,
    /// Added to the environment (or, with `clear_env`, the whole of it).
    pub env: Vec<(String, String)>,
    pub clear_env: bool,
    pub cwd: Option<String>,
    pub output: Output,
    pub isolation: Isolation,
    pub timeout: Option<Duration>,
}

impl Cmd {
    /// `argv[0]` is looked up on PATH; output to pipes, no timeout, the environment inherited.
    pub fn new<I, S>(argv: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            output: Output::Pipes,
            isolation: Isolation::None,
            timeout: None,
        }
    }

    pub fn output(mut self, output: Output) -> Cmd {
        self.output = output;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = Some(timeout);
        self
    }

    pub fn env<K: Into<String>, V: Into<String>>(mut self, k: K, v: V) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The argv as one line, for logs and errors.
    pub fn line(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A process that ran to its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Empty with [`Output::OneFile`].
    pub stdout: String,
    pub stderr: String,
    /// The last [`TAIL_BYTES`] of the output, see [`tail`].
    pub tail: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "failed with exit code N" / "was killed by signal N".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("failed with exit code {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "failed".to_string(),
        }
    }
}

/// Why a process did not run to its end. The caller words it: its error names the tool.
#[derive(Debug)]
pub enum Failed {
    /// No anonymous file for its output.
    OutputFile(std::io::Error),
    Start(std::io::Error),
    Wait(std::io::Error),
    /// Killed at its timeout; `tail` is its output so far (empty with [`Output::Pipes`]).
    TimedOut {
        after: Duration,
        tail: String,
    },
}

pub type Running<'a> = Pin<Box<dyn Future<Output = Result<Finished, Failed>> + Send + 'a>>;

/// Starts processes: [`Real`] in the program, [`Fake`] in tests.
pub trait Runner: Send + Sync {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> Running<'a>;
}

/// The runner that starts real processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Real;

/// What the program runs with.
pub static REAL: Real = Real;

/// [`REAL`], for holders that keep their runner (as `Systemctl`).
pub fn real() -> std::sync::Arc<dyn Runner> {
    std::sync::Arc::new(Real)
}

impl Runner for Real {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> Running<'a> {
        Box::pin(run_real(cmd))
    }
}

async fn run_real(cmd: &Cmd) -> Result<Finished, Failed> {
    let mut c = tokio::process::Command::new(&cmd.argv[0]);
    c.args(&cmd.argv[1..]);
    if cmd.clear_env {
        c.env_clear();
    }
    c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &cmd.cwd {
        c.current_dir(cwd);
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    // The files the output is read back from.
    let mut readers: Option<(std::fs::File, Option<std::fs::File>)> = None;
    match cmd.output {
        Output::Pipes => {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Output::Files => {
            let out = tempfile::tempfile().map_err(Failed::OutputFile)?;
            let err = tempfile::tempfile().map_err(Failed::OutputFile)?;
            readers = Some((
                out.try_clone().map_err(Failed::OutputFile)?,
                Some(err.try_clone().map_err(Failed::OutputFile)?),
            ));
            c.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        }
        Output::OneFile => {
            let out = tempfile::tempfile().map_err(Failed::OutputFile)?;
            let err = out.try_clone().map_err(Failed::OutputFile)?;
            readers = Some((out.try_clone().map_err(Failed::OutputFile)?, None));
            c.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        }
    }
    let cgroup = match cmd.isolation {
        Isolation::None => None,
        Isolation::Cgroup => {
            // Its own cgroup where there is one, else its process group only.
            let cg = CommandCgroup::create();
            if let Some(cg) = &cg {
                let procs = cg.procs_path();
                // SAFETY: the hook only makes async-signal-safe calls (open/write/close).
                #[allow(unsafe_code)]
                unsafe {
                    c.pre_exec(move || {
                        cgroup::enter(&procs);
                        Ok(())
                    });
                }
            }
            // Its own process group, so a timeout kills what the command started too.
            c.process_group(0);
            cg
        }
    };
    let mut child = c.spawn().map_err(Failed::Start)?;
    // When the caller's future is dropped (the run's deadline), the whole group goes.
    let mut guard = (cmd.isolation == Isolation::Cgroup).then(|| KillOnDrop {
        pid: child.id(),
        cgroup,
    });
    if cmd.output == Output::Pipes {
        let waited = child.wait_with_output();
        let out = match cmd.timeout {
            None => waited.await,
            // Dropping the future kills the child (kill_on_drop).
            Some(t) => match tokio::time::timeout(t, waited).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Failed::TimedOut {
                        after: t,
                        tail: String::new(),
                    })
                }
            },
        }
        .map_err(Failed::Wait)?;
        if let Some(g) = guard {
            g.disarm();
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Ok(finished(out.status, stdout, stderr, None));
    }
    let (out_r, err_r) = readers.expect("set for file output");
    let status = match cmd.timeout {
        None => child.wait().await,
        Some(t) => match tokio::time::timeout(t, child.wait()).await {
            Ok(r) => r,
            Err(_) => {
                match &mut guard {
                    Some(g) => {
                        g.kill();
                        let _ = child.wait().await;
                    }
                    None => {
                        let _ = child.kill().await;
                    }
                }
                let tail = match err_r {
                    None => tail_of_file(out_r),
                    Some(_) => String::new(),
                };
                return Err(Failed::TimedOut { after: t, tail });
            }
        },
    }
    .map_err(Failed::Wait)?;
    // Finished: daemons it left behind on purpose are not ours to kill.
    if let Some(g) = guard {
        g.disarm();
    }
    Ok(match err_r {
        Some(err_r) => finished(status, read_all(out_r), read_all(err_r), None),
        None => finished(
            status,
            String::new(),
            String::new(),
            Some(tail_of_file(out_r)),
        ),
    })
}

fn finished(
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    tail_: Option<String>,
) -> Finished {
    use std::os::unix::process::ExitStatusExt;
    let tail_ = tail_.unwrap_or_else(|| tail(format!("{stdout}\n{stderr}").as_bytes()));
    Finished {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        tail: tail_,
    }
}

/// The last [`TAIL_BYTES`] of `output` (from a character boundary), its non-blank lines trimmed
/// and joined with ` | ` so that they fit one line of an error.
pub fn tail(output: &[u8]) -> String {
    let mut start = output.len().saturating_sub(TAIL_BYTES);
    // Not in the middle of a UTF-8 sequence (continuation bytes are 0b10xxxxxx).
    while start < output.len() && output[start] & 0xC0 == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&output[start..])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// [`tail`] of a file, reading only its end.
fn tail_of_file(mut f: std::fs::File) -> String {
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES as u64)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    tail(&buf)
}

fn read_all(mut f: std::fs::File) -> String {
    let _ = f.seek(SeekFrom::Start(0));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Kills a process — its process group and its cgroup — unless disarmed once it has finished.
struct KillOnDrop {
    pid: Option<u32>,
    cgroup: Option<CommandCgroup>,
}

impl KillOnDrop {
    fn kill(&mut self) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    /// The process ended by itself: what it left running stays (out of its cgroup).
    fn disarm(mut self) {
        self.pid = None;
        if let Some(cg) = self.cgroup.take() {
            cg.release();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The recording runner Rust tests drive the seam with (see [`fake::Fake`]).
#[cfg(test)]
pub mod fake;
#[cfg(test)]
pub use fake::{Fake, Reply};

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new(["sh", "-c", script])
    }

    #[test]
    fn the_tail_is_the_end_from_a_character_boundary() {
        assert_eq!(tail(b"  a \n\n b\n"), "a | b");
        let long = format!("{}é{}", "x".repeat(10), "y".repeat(TAIL_BYTES - 1));
        // The cut falls inside 'é' (2 bytes): it is left out, not shown as U+FFFD.
        assert_eq!(tail(long.as_bytes()), "y".repeat(TAIL_BYTES - 1));
    }

    #[tokio::test]
    async fn each_output_mode_reads_what_it_should() {
        let script = "echo out; echo err >&2; exit 3";
        for output in [Output::Pipes, Output::Files] {
            let f = REAL.run(&sh(script).output(output)).await.unwrap();
            assert_eq!(
                (
                    f.code,
                    f.stdout.as_str(),
                    f.stderr.as_str(),
                    f.tail.as_str()
                ),
                (Some(3), "out\n", "err\n", "out | err"),
                "{output:?}"
            );
            assert_eq!(f.describe(), "failed with exit code 3");
        }
        let f = REAL.run(&sh(script).output(Output::OneFile)).await.unwrap();
        assert_eq!((f.stdout.as_str(), f.tail.as_str()), ("", "out | err"));
        let mut c = sh("echo \"$X:${HOME:-none}\"; pwd").env("X", "1");
        c.clear_env = true;
        c.cwd = Some("/".into());
        let f = REAL.run(&c).await.unwrap();
        assert_eq!(f.stdout, "1:none\n/\n");
    }

    #[tokio::test]
    async fn a_timeout_kills_and_says_so() {
        let t = std::time::Instant::now();
        for output in [Output::Pipes, Output::Files, Output::OneFile] {
            let c = sh("echo started; sleep 30")
                .output(output)
                .timeout(Duration::from_millis(300));
            match REAL.run(&c).await {
                Err(Failed::TimedOut { after, tail }) => {
                    assert_eq!(after, Duration::from_millis(300));
                    assert_eq!(
                        tail,
                        if output == Output::OneFile {
                            "started"
                        } else {
                            ""
                        }
                    );
                }
                other => panic!("{output:?}: {other:?}"),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20));
        assert!(matches!(
            REAL.run(&Cmd::new(["/no/such/tool"])).await,
            Err(Failed::Start(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_fake_records_and_answers_as_scripted() {
        let fake = Fake::scripted(|argv| (argv[0] == "gone").then_some(Reply::Missing))
            .then(Reply::Exit(2, "no".into()))
            .then(Reply::Hang);
        let a = fake.run(&Cmd::new(["a", "1"]).env("K", "V")).await.unwrap();
        assert_eq!((a.code, a.stdout.as_str()), (Some(2), "no"));
        let b = fake
            .run(&Cmd::new(["b"]).timeout(Duration::from_secs(30)))
            .await;
        assert!(matches!(b, Err(Failed::TimedOut { .. })), "{b:?}");
        assert!(matches!(
            fake.run(&Cmd::new(["gone"])).await,
            Err(Failed::Start(_))
        ));
        assert!(fake.run(&Cmd::new(["c"])).await.unwrap().success());
        assert_eq!(fake.lines(), ["a 1", "b", "gone", "c"]);
        assert_eq!(fake.calls()[0].env, [("K".into(), "V".into())]);
        assert_eq!(fake.calls()[1].timeout, Some(Duration::from_secs(30)));
    }
}
