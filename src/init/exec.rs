//! The external tools the Init engine drives (package managers, account tools, service
//! managers). Every call is bounded by a timeout, because a wedged `yum` must end in a FAILURE
//! with a reason rather than a boot that never finishes; and a failure names the command line
//! and its exit code.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::process::{Cmd, Failed, Output, Runner};

/// Queries (`rpm -q`, `getent`, `is-active`) answer at once on a healthy machine.
pub const QUERY: Duration = Duration::from_secs(60);
/// Installs download; a large `yum install` on a slow mirror takes minutes.
pub const INSTALL: Duration = Duration::from_secs(1800);
/// Account changes and service actions (a blocking start of a user service).
pub const CHANGE: Duration = Duration::from_secs(300);

/// Where a call comes from, for the error (config and section), and what runs it.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub config: &'a str,
    pub section: &'static str,
    pub runner: &'a dyn Runner,
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
    let mut cmd = Cmd::new(argv).output(Output::Files).timeout(timeout);
    cmd.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let done = ctx.runner.run(&cmd).await.map_err(|f| {
        fail(match f {
            Failed::OutputFile(e) => format!("no temporary file: {e}"),
            Failed::Start(e) => format!("could not be started: {e}"),
            Failed::Wait(e) => format!("could not be waited for: {e}"),
            Failed::TimedOut { after, .. } => {
                format!("did not finish within {after:?} and was killed")
            }
        })
    })?;
    Ok(Answer {
        code: done.code,
        stdout: done.stdout,
        output_tail: done.tail,
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
        runner: &crate::sys::process::REAL,
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
