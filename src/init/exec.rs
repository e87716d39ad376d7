//! The external tools the Init engine drives (package managers, account tools, service
//! managers). Every call is bounded by a timeout, because a wedged `yum` must end in a FAILURE
//! with a reason rather than a boot that never finishes; and a failure names the command line
//! and its exit code.

use std::io::{Read, Seek, SeekFrom};
use std::process::Stdio;
use std::time::Duration;

use crate::error::{Error, Result};

/// Queries (`rpm -q`, `getent`, `is-active`) answer at once on a healthy machine.
pub const QUERY: Duration = Duration::from_secs(60);
/// Installs download; a large `yum install` on a slow mirror takes minutes.
pub const INSTALL: Duration = Duration::from_secs(1800);
/// Account changes and service actions (a blocking start of a user service).
pub const CHANGE: Duration = Duration::from_secs(300);

/// How much of a failed tool's output goes into the error.
const TAIL_BYTES: u64 = 400;

/// Where a call comes from, for the error: config and section.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub config: &'a str,
    pub section: &'static str,
}

#[derive(Debug)]
pub struct Answer {
    pub code: Option<i32>,
    pub stdout: String,
    pub output_tail: String,
}

impl Answer {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `argv` (looked up on PATH) with the inherited environment plus `env`. Only a tool that
/// cannot be started or does not finish in time is an error here; the exit code is the
/// caller's to judge.
pub async fn call(
    ctx: Ctx<'_>,
    argv: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer> {
    let line = argv.join(" ");
    tracing::debug!(config = ctx.config, section = ctx.section, command = %line, "running");
    let fail = |outcome: String| Error::Tool {
        config: ctx.config.to_string(),
        section: ctx.section,
        command: line.clone(),
        outcome,
        output_tail: String::new(),
    };
    // Output goes to files, not pipes: `service x start` may leave a daemon holding them open.
    let out = tempfile::tempfile().map_err(|e| fail(format!("no temporary file: {e}")))?;
    let err = tempfile::tempfile().map_err(|e| fail(format!("no temporary file: {e}")))?;
    let (out_r, err_r) = (
        out.try_clone()
            .map_err(|e| fail(format!("no temporary file: {e}")))?,
        err.try_clone()
            .map_err(|e| fail(format!("no temporary file: {e}")))?,
    );
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("could not be started: {e}")))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(fail(format!("could not be waited for: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            return Err(fail(format!(
                "did not finish within {timeout:?} and was killed"
            )));
        }
    };
    let stdout = read_all(out_r);
    let stderr = read_all(err_r);
    let combined = format!("{stdout}\n{stderr}");
    let start = combined.len().saturating_sub(TAIL_BYTES as usize);
    let start = (start..combined.len())
        .find(|i| combined.is_char_boundary(*i))
        .unwrap_or(0);
    let output_tail = combined[start..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    Ok(Answer {
        code: status.code(),
        stdout,
        output_tail,
    })
}

/// Like [`call`], but a non-zero exit is an error naming the command line and the code.
pub async fn must(
    ctx: Ctx<'_>,
    argv: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer> {
    let a = call(ctx, argv, env, timeout).await?;
    if a.success() {
        tracing::info!(
            config = ctx.config,
            section = ctx.section,
            command = %argv.join(" "),
            "done"
        );
        return Ok(a);
    }
    Err(failed(ctx, argv, a))
}

/// The error for a call whose exit code the caller does not accept.
pub fn failed(ctx: Ctx<'_>, argv: &[String], a: Answer) -> Error {
    Error::Tool {
        config: ctx.config.to_string(),
        section: ctx.section,
        command: argv.join(" "),
        outcome: match a.code {
            Some(c) => format!("failed with exit code {c}"),
            None => "was killed by a signal".to_string(),
        },
        output_tail: a.output_tail,
    }
}

fn read_all(mut f: std::fs::File) -> String {
    let _ = f.seek(SeekFrom::Start(0));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `["yum", "-y"]` from string slices.
pub fn argv<const N: usize>(parts: [&str; N]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Ctx<'static> = Ctx {
        config: "cfg",
        section: "packages",
    };

    #[tokio::test]
    async fn failure_names_command_and_code() {
        let e = must(
            CTX,
            &argv(["sh", "-c", "echo nope >&2; exit 7"]),
            &[],
            QUERY,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "config 'cfg' packages: `sh -c echo nope >&2; exit 7` failed with exit code 7"
            ) && e.contains("nope"),
            "{e}"
        );
        let a = call(
            CTX,
            &argv(["sh", "-c", "echo $X; exit 2"]),
            &[("X", "hi")],
            QUERY,
        )
        .await
        .unwrap();
        assert_eq!((a.code, a.stdout.as_str()), (Some(2), "hi\n"));
    }

    #[tokio::test]
    async fn timeout_kills_and_reports() {
        let t = std::time::Instant::now();
        let e = call(CTX, &argv(["sleep", "30"]), &[], Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sleep 30` did not finish within 300ms"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20));
        let e = call(CTX, &argv(["/no/such/tool"]), &[], QUERY)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("could not be started"), "{e}");
    }
}
