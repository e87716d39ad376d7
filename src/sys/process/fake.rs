//! A runner for tests: records every call and answers from a script, so the boot sequence,
//! Init and systemctl can be driven without starting a process.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::{tail, Cmd, Failed, Finished, Runner, Running};

/// One call a [`Fake`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

/// How a [`Fake`] answers a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Ends with this exit code and stdout.
    Exit(i32, String),
    /// Never ends by itself: the call's timeout (slept in tokio time) ends it.
    Hang,
    /// Cannot be started (as a tool missing from PATH).
    Missing,
}

type Script = Box<dyn Fn(&[String]) -> Option<Reply> + Send + Sync>;

/// A runner for tests: records each call and answers from its script (exit 0, no output, for
/// a call the script does not answer).
#[derive(Default)]
pub struct Fake {
    calls: Mutex<Vec<Call>>,
    queue: Mutex<VecDeque<Reply>>,
    script: Option<Script>,
}

impl Fake {
    /// Answers by argv; `None` from `script` takes the next queued reply, then exit 0.
    pub fn scripted(script: impl Fn(&[String]) -> Option<Reply> + Send + Sync + 'static) -> Fake {
        Fake {
            script: Some(Box::new(script)),
            ..Fake::default()
        }
    }

    /// Answers the next calls in this order.
    pub fn then(self, reply: Reply) -> Fake {
        self.queue.lock().expect("not poisoned").push_back(reply);
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("not poisoned").clone()
    }

    /// The argv of every call, each as one line.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.argv.join(" ")).collect()
    }
}

impl Runner for Fake {
    fn run<'a>(&'a self, cmd: &'a Cmd) -> Running<'a> {
        let argv: Vec<String> = cmd
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let reply = self
            .script
            .as_ref()
            .and_then(|s| s(&argv))
            .or_else(|| self.queue.lock().expect("not poisoned").pop_front())
            .unwrap_or(Reply::Exit(0, String::new()));
        self.calls.lock().expect("not poisoned").push(Call {
            argv,
            env: cmd.env.clone(),
            timeout: cmd.timeout,
        });
        Box::pin(async move {
            match reply {
                Reply::Exit(code, stdout) => Ok(Finished {
                    code: Some(code),
                    signal: None,
                    tail: tail(stdout.as_bytes()),
                    stdout,
                    stderr: String::new(),
                }),
                Reply::Missing => Err(Failed::Start(std::io::Error::from(
                    std::io::ErrorKind::NotFound,
                ))),
                Reply::Hang => match cmd.timeout {
                    Some(t) => {
                        tokio::time::sleep(t).await;
                        Err(Failed::TimedOut {
                            after: t,
                            tail: String::new(),
                        })
                    }
                    None => std::future::pending().await,
                },
            }
        })
    }
}
