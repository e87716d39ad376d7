//! What a run that did not fail reports: one case per way a run can end well, each with only the
//! facts that case has (a skipped run knows no instance or cluster; a run without a signal has
//! no delivery to report).

use crate::boot::handoff;
use crate::boot::signal::Delivered;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The agent joined `cluster` and CloudFormation was told (or had been, or no longer waits).
    Signalled {
        instance_id: String,
        cluster: String,
        delivered: Delivered,
    },
    /// The agent joined `cluster`; `--no-signal`, so CloudFormation was not told.
    NotSignalled {
        instance_id: String,
        cluster: String,
    },
    /// Nothing done: another invocation does or did the work (src/boot/once.rs).
    Skipped { why: String },
    /// Configured here; the services, the join and the signal are the hand-off unit's
    /// (src/boot/handoff.rs).
    HandedOff {
        instance_id: String,
        cluster: String,
    },
}

impl Outcome {
    /// A joined run: signalled with `delivered`, or not at all (`None`: `--no-signal`).
    pub fn joined(instance_id: String, cluster: String, delivered: Option<Delivered>) -> Self {
        match delivered {
            Some(delivered) => Outcome::Signalled {
                instance_id,
                cluster,
                delivered,
            },
            None => Outcome::NotSignalled {
                instance_id,
                cluster,
            },
        }
    }

    pub fn skipped(why: String) -> Self {
        tracing::info!(reason = %why, "nothing to do");
        Outcome::Skipped { why }
    }

    /// The line an operator reads on the console (after `ecs-bootstrap: `).
    pub fn console_line(&self) -> String {
        let (instance_id, cluster, told) = match self {
            Outcome::Skipped { why } => return format!("SKIPPED: {why}"),
            Outcome::HandedOff {
                instance_id,
                cluster,
            } => {
                return format!(
                    "CONFIGURED: instance {instance_id} is configured for cluster {cluster}; running under cloud-final (UserData), so starting the services, waiting for the join and signalling are handed off to {unit}.service (ecs.service cannot start before cloud-final ends); follow it with `journalctl -u {unit}`",
                    unit = handoff::UNIT
                )
            }
            Outcome::Signalled {
                instance_id,
                cluster,
                delivered,
            } => (
                instance_id,
                cluster,
                match delivered {
                    Delivered::Yes => "signalled SUCCESS",
                    Delivered::NotWaiting => "the resource was not waiting for a signal",
                    Delivered::Earlier => "already signalled by an earlier run",
                },
            ),
            Outcome::NotSignalled {
                instance_id,
                cluster,
            } => (instance_id, cluster, "no signal (--no-signal)"),
        };
        format!("SUCCESS: instance {instance_id} joined cluster {cluster}; {told}")
    }

    /// The run event's `status`, `reason` and `signal` fields (src/boot/events.rs).
    pub fn event_fields(&self) -> (&'static str, Option<String>, &'static str) {
        match self {
            Outcome::Skipped { why } => ("SKIPPED", Some(why.clone()), "not sent"),
            Outcome::HandedOff { .. } => ("HANDED_OFF", None, "sent by the hand-off unit"),
            Outcome::Signalled { delivered, .. } => (
                "SUCCESS",
                None,
                match delivered {
                    Delivered::Yes => "delivered",
                    Delivered::NotWaiting => "not waiting",
                    Delivered::Earlier => "delivered by an earlier run",
                },
            ),
            Outcome::NotSignalled { .. } => ("SUCCESS", None, "not sent (--no-signal)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(delivered: Option<Delivered>) -> Outcome {
        Outcome::joined("i-1".into(), "c".into(), delivered)
    }

    /// The texts as main.rs and boot::report printed them before the enum (commit 56c50b4):
    /// UserData scripts and tests/test_once.py read them.
    #[test]
    fn console_lines_are_the_interface_texts() {
        let cases = [
            (
                Outcome::Skipped { why: "w".into() },
                "SKIPPED: w",
            ),
            (
                joined(Some(Delivered::Yes)),
                "SUCCESS: instance i-1 joined cluster c; signalled SUCCESS",
            ),
            (
                joined(Some(Delivered::NotWaiting)),
                "SUCCESS: instance i-1 joined cluster c; the resource was not waiting for a signal",
            ),
            (
                joined(Some(Delivered::Earlier)),
                "SUCCESS: instance i-1 joined cluster c; already signalled by an earlier run",
            ),
            (
                joined(None),
                "SUCCESS: instance i-1 joined cluster c; no signal (--no-signal)",
            ),
            (
                Outcome::HandedOff { instance_id: "i-1".into(), cluster: "c".into() },
                "CONFIGURED: instance i-1 is configured for cluster c; running under cloud-final (UserData), so starting the services, waiting for the join and signalling are handed off to ecs-bootstrap-boot.service (ecs.service cannot start before cloud-final ends); follow it with `journalctl -u ecs-bootstrap-boot`",
            ),
        ];
        for (outcome, line) in cases {
            assert_eq!(outcome.console_line(), line);
        }
    }

    #[test]
    fn event_fields_per_case() {
        assert_eq!(
            Outcome::Skipped { why: "w".into() }.event_fields(),
            ("SKIPPED", Some("w".into()), "not sent")
        );
        assert_eq!(
            Outcome::HandedOff {
                instance_id: "i".into(),
                cluster: "c".into()
            }
            .event_fields(),
            ("HANDED_OFF", None, "sent by the hand-off unit")
        );
        assert_eq!(
            joined(None).event_fields(),
            ("SUCCESS", None, "not sent (--no-signal)")
        );
        for (d, signal) in [
            (Delivered::Yes, "delivered"),
            (Delivered::NotWaiting, "not waiting"),
            (Delivered::Earlier, "delivered by an earlier run"),
        ] {
            assert_eq!(joined(Some(d)).event_fields(), ("SUCCESS", None, signal));
        }
    }
}
