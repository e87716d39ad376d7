//! The plan: everything a run will do, decided before anything is done. A dry run prints it; a
//! real run executes it. Built once from the metadata, so the two cannot disagree.

use std::fmt::Write as _;

use serde::Serialize;

use crate::boot::identity::Identity;
use crate::boot::join::JoinSpec;
use crate::boot::metadata::ResourceMetadata;
use crate::boot::services::{ServiceAction, DOCKER, ECS};
use crate::boot::signal::SignalSpec;
use crate::config::ecs_config::{self, AgentConfig};
use crate::config::logs_config;
use crate::config::settings::Settings;
use crate::init::{CommandLine, InitPlan};
use crate::sys::fs::Root;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub identity: Identity,
    pub metadata_origin: String,
    pub resource_type: Option<String>,
    /// The directory every written path is placed under (`/` on an instance).
    pub root: String,
    pub init: InitPlan,
    pub agent_config: AgentConfigPlan,
    pub logs_config: Option<LogsConfigPlan>,
    pub services: Vec<ServiceAction>,
    pub join: JoinSpec,
    /// `None` with `--no-signal`.
    pub signal: Option<SignalSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentConfigPlan {
    pub path: &'static str,
    pub config: AgentConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogsConfigPlan {
    pub path: &'static str,
    pub content: String,
    pub required: bool,
}

pub struct Inputs<'a> {
    pub identity: Identity,
    pub metadata: &'a ResourceMetadata,
    pub settings: &'a Settings,
    pub init: InitPlan,
    pub root: &'a Root,
    pub stack: &'a str,
    pub signal_resource: &'a str,
    pub introspection_url: &'a str,
    pub timeout_override: Option<u64>,
    pub signal: bool,
}

impl Plan {
    pub fn build(i: Inputs<'_>) -> crate::error::Result<Plan> {
        let logs_config = logs_config::render(
            &i.settings.logs,
            &logs_config::default_prefix(i.stack, i.signal_resource),
        )?
        .map(|content| LogsConfigPlan {
            path: logs_config::PATH,
            content,
            required: i.settings.logs.explicit,
        });
        let mut services = Vec::new();
        if let Some(l) = &logs_config {
            services.push(ServiceAction {
                unit: logs_config::UNIT.into(),
                required: l.required,
                restart_if_running: false,
            });
        }
        for unit in [DOCKER, ECS] {
            services.push(ServiceAction {
                unit: unit.into(),
                required: true,
                restart_if_running: false,
            });
        }
        let signal = i.signal.then(|| SignalSpec {
            stack: i.stack.to_string(),
            resource: i.signal_resource.to_string(),
            unique_id: i.identity.instance_id.clone(),
        });
        Ok(Plan {
            join: JoinSpec {
                introspection_url: i.introspection_url.to_string(),
                cluster: i.settings.cluster.clone(),
                timeout_secs: i.timeout_override.unwrap_or(i.settings.timeout_secs),
            },
            identity: i.identity,
            metadata_origin: i.metadata.origin.clone(),
            resource_type: i.metadata.resource_type.clone(),
            root: i.root.dir().display().to_string(),
            init: i.init,
            agent_config: AgentConfigPlan {
                path: ecs_config::PATH,
                config: AgentConfig::from_settings(i.settings),
            },
            logs_config,
            services,
            signal,
        })
    }

    /// The plan as it may be shown: agent secrets replaced. Init file contents are shown as
    /// written in the template (that is where they came from).
    pub fn redacted(&self) -> Plan {
        let mut p = self.clone();
        for (k, v) in &mut p.agent_config.config.entries {
            if ecs_config::is_secret_entry(k, v) {
                *v = crate::sys::redact::REDACTED.into();
            }
        }
        p
    }

    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self.redacted()).expect("a plan always serialises");
        // Registered secrets and URL passwords, wherever a template put them.
        crate::sys::redact::value(&mut v);
        serde_json::to_string_pretty(&v).expect("a plan always serialises") + "\n"
    }

    /// The plan for a person: every template-derived value goes through [`v`] (control
    /// characters visible, one line each), and the whole text through [`crate::sys::shown::lines`]
    /// and [`crate::sys::redact::text`] as a net for anything missed.
    pub fn to_text(&self) -> String {
        let text = self.text_unchecked();
        crate::sys::redact::text(&crate::sys::shown::lines(&text))
    }

    fn text_unchecked(&self) -> String {
        let p = self.redacted();
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(
            w,
            "ecs-bootstrap plan (dry run: nothing is written, started or signalled)"
        );
        let id = &p.identity;
        let _ = writeln!(
            w,
            "instance: {} ({}, {}, account {})",
            v(&id.instance_id),
            v(&id.instance_type),
            v(&id.availability_zone),
            v(&id.account_id)
        );
        let _ = writeln!(
            w,
            "metadata: {}{}",
            v(&p.metadata_origin),
            p.resource_type
                .as_deref()
                .map(|t| format!(" [{}]", v(t)))
                .unwrap_or_default()
        );
        if p.root != "/" {
            let _ = writeln!(w, "root: every path below is written under {}", v(&p.root));
        }

        let _ = writeln!(w, "\n1. {}", crate::init::BLOCK);
        if p.init.configs.is_empty() {
            let _ = writeln!(w, "   (no Init configs to run)");
        } else if !p.init.configsets.is_empty() {
            let _ = writeln!(
                w,
                "   configSets {} -> configs {}",
                v(&p.init.configsets.join(",")),
                v(&p.init
                    .configs
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
            );
        }
        for line in p.init.authentication.describe() {
            let _ = writeln!(w, "   authentication {}", v(&line));
        }
        for c in &p.init.configs {
            let _ = writeln!(w, "   config '{}':", v(&c.name));
            for line in crate::init::describe::before_files(c, &p.init.authentication) {
                let _ = writeln!(w, "   {}", v(&line));
            }
            for src in &c.sources {
                let _ = writeln!(
                    w,
                    "   - unpack {} into {}{}",
                    v(&src.url),
                    v(&src.target),
                    if src.strip_top_dir {
                        " (without its top directory)"
                    } else {
                        ""
                    }
                );
            }
            for f in &c.files {
                if f.symlink {
                    let _ = writeln!(
                        w,
                        "   - symlink {} -> {}",
                        v(&f.path),
                        v(f.content.as_text().unwrap_or("?"))
                    );
                    continue;
                }
                let _ = writeln!(
                    w,
                    "   - file {} (mode {}, owner {}:{})",
                    v(&f.path),
                    f.mode
                        .map_or("unchanged, 0644 if new".to_string(), |m| format!("{m:04o}")),
                    v(f.owner.as_deref().unwrap_or("unchanged")),
                    v(f.group.as_deref().unwrap_or("unchanged")),
                );
                match &f.source {
                    Some(url) => {
                        let _ = writeln!(
                            w,
                            "       from {}{}{}",
                            v(url),
                            f.authentication
                                .as_deref()
                                .map(|a| format!(" (authentication {})", v(a)))
                                .unwrap_or_default(),
                            if f.context.is_some() {
                                ", rendered with its context"
                            } else {
                                ""
                            }
                        );
                    }
                    None => content(w, f.content.as_text(), f.content.0.len()),
                }
            }
            for cmd in &c.commands {
                let line = match &cmd.command {
                    CommandLine::Shell(s) => format!("/bin/sh -c {s:?}"),
                    CommandLine::Exec(argv) => argv.join(" "),
                };
                let _ = writeln!(w, "   - command {}: {}", v(&cmd.key), v(&line));
                if let Some(t) = &cmd.test {
                    let t = match t {
                        CommandLine::Shell(s) => s.clone(),
                        CommandLine::Exec(argv) => argv.join(" "),
                    };
                    let _ = writeln!(w, "       only if `{}` succeeds", v(&t));
                }
                if let Some(user) = &cmd.runas {
                    let _ = writeln!(w, "       as {user} (su {user} -c ...)");
                }
                if let Some(cwd) = &cmd.cwd {
                    let _ = writeln!(w, "       cwd: {}", v(cwd));
                }
                match &cmd.env {
                    Some(env) => {
                        let vars: Vec<String> =
                            env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let _ = writeln!(
                            w,
                            "       env (replaces the environment): {}",
                            v(&vars.join(" "))
                        );
                    }
                    None => {
                        let _ = writeln!(w, "       env: inherited");
                    }
                }
                if cmd.ignore_errors {
                    let _ = writeln!(w, "       a failure is ignored (ignoreErrors)");
                }
                if let Some(s) = cmd.wait_after_completion.filter(|s| *s > 0) {
                    let _ = writeln!(w, "       then wait {s}s");
                }
                if cmd.wait_for_reboot {
                    let _ = writeln!(
                        w,
                        "       then wait for the reboot it starts; the next run resumes after it"
                    );
                }
                if let Some(s) = cmd.timeout {
                    let _ = writeln!(w, "       killed after {s}s (timeout)");
                }
            }
            for line in crate::init::describe::after_commands(c) {
                let _ = writeln!(w, "   {}", v(&line));
            }
        }

        let ac = &p.agent_config;
        let _ = writeln!(
            w,
            "\n2. write {} (mode {:04o}; keys already in the file and not set here are kept after these)",
            ac.path,
            // From the real values: the redacted copy no longer shows which are secret.
            self.agent_config.config.mode(&[])
        );
        content(w, Some(&ac.config.render(&[])), 0);

        match &p.logs_config {
            Some(l) => {
                let _ = writeln!(w, "\n3. write {} (mode 0644)", l.path);
                content(w, Some(&l.content), 0);
            }
            None => {
                let _ = writeln!(w, "\n3. CloudWatch agent: logs disabled, nothing written");
            }
        }

        let _ = writeln!(
            w,
            "\n   -- configured: as ecs-bootstrap.service, READY=1 to systemd here (ecs.service is ordered\n      \
             after it and may start from now on); run from UserData, steps 4-6 are handed to the\n      \
             transient unit {}.service and UserData returns",
            crate::boot::handoff::UNIT
        );
        let _ = writeln!(w, "\n4. services");
        // The very argv the run executes (src/boot/services.rs), in its order.
        for s in &p.services {
            let line = |s: &ServiceAction| {
                crate::boot::services::calls(s)
                    .into_iter()
                    .map(|(_, argv)| argv.join(" "))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                w,
                "   - {}{}",
                v(&line(s)),
                if s.required {
                    ""
                } else {
                    "   (skipped with a warning if not installed)"
                },
            );
            if s.unit == logs_config::UNIT && !s.restart_if_running {
                // Decided by the run: the fragment it writes in step 3 changed (src/boot/mod.rs).
                let restarted = ServiceAction {
                    restart_if_running: true,
                    ..s.clone()
                };
                let _ = writeln!(
                    w,
                    "       if step 3 changes its config, first: {}",
                    v(&crate::boot::services::calls(&restarted)[0].1.join(" "))
                );
            }
        }
        let _ = writeln!(
            w,
            "   - wait until `{}` says active",
            crate::sys::systemctl::is_active(DOCKER).join(" ")
        );

        let j = &p.join;
        let _ = writeln!(
            w,
            "\n5. wait up to {}s for {}/v1/metadata to report cluster '{}' with a ContainerInstanceArn,\n   \
             failing at once if {ECS} or {DOCKER} fails; then ecs:DescribeContainerInstances must say ACTIVE, agentConnected",
            j.timeout_secs,
            v(j.introspection_url.trim_end_matches('/')),
            v(&j.cluster)
        );

        match &p.signal {
            Some(s) => {
                let _ = writeln!(
                    w,
                    "\n6. cloudformation:SignalResource stack={} resource={} unique-id={} status=SUCCESS\n   \
                     (FAILURE, with the reason in the log, if any step above fails)",
                    v(&s.stack),
                    v(&s.resource),
                    v(&s.unique_id)
                );
            }
            None => {
                let _ = writeln!(w, "\n6. no signal (--no-signal)");
            }
        }
        o
    }
}

/// A template-derived value as shown in the text plan.
fn v(s: &str) -> std::borrow::Cow<'_, str> {
    crate::sys::shown::value(s)
}

fn content(w: &mut String, text: Option<&str>, len: usize) {
    match text {
        Some(t) => {
            for line in t.lines() {
                let _ = writeln!(w, "       | {}", v(line));
            }
        }
        None => {
            let _ = writeln!(w, "       ({len} bytes of binary content)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::services::calls;
    use crate::config::settings::{self, Values};
    use serde_json::json;

    fn plan(block: serde_json::Value, signal: bool) -> Plan {
        let metadata = ResourceMetadata {
            resource_type: Some("AWS::AutoScaling::LaunchConfiguration".into()),
            metadata: json!({ "ecs-bootstrap": block }),
            origin: "a test".into(),
        };
        let settings = settings::parse(&metadata.metadata, Values::Real).unwrap();
        let init = crate::init::parse(&metadata.metadata, &[], crate::input::Keys::Warn).unwrap();
        Plan::build(Inputs {
            identity: Identity::fake("eu-west-1"),
            metadata: &metadata,
            settings: &settings,
            init,
            root: &Root::new("/"),
            stack: "app",
            signal_resource: "Group",
            introspection_url: "http://127.0.0.1:51678",
            timeout_override: None,
            signal,
        })
        .unwrap()
    }

    /// The lines of step 4 of the text plan.
    fn services_step(p: &Plan) -> Vec<String> {
        let text = p.text_unchecked();
        let (_, after) = text.split_once("\n4. services\n").expect("step 4");
        let (step, _) = after.split_once("\n\n").expect("step 5 follows");
        step.lines().map(str::to_string).collect()
    }

    fn line(s: &ServiceAction) -> String {
        calls(s)
            .into_iter()
            .map(|(_, argv)| argv.join(" "))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What the dry run prints for step 4 is what `services::start` executes: each unit's line
    /// is its `services::calls`, in the run's order; the CloudWatch agent's restart is the
    /// first call of the same unit with `restart_if_running`, as the run decides it.
    #[test]
    fn the_services_step_is_the_runs_calls() {
        let p = plan(json!({"Cluster": "prod"}), true);
        let units: Vec<(&str, bool)> = p
            .services
            .iter()
            .map(|s| (s.unit.as_str(), s.required))
            .collect();
        assert_eq!(
            units,
            [(logs_config::UNIT, false), (DOCKER, true), (ECS, true)]
        );
        let cloudwatch = &p.services[0];
        let restarted = ServiceAction {
            restart_if_running: true,
            ..cloudwatch.clone()
        };
        assert_eq!(
            services_step(&p),
            [
                format!(
                    "   - {}   (skipped with a warning if not installed)",
                    line(cloudwatch)
                ),
                format!(
                    "       if step 3 changes its config, first: {}",
                    calls(&restarted)[0].1.join(" ")
                ),
                format!("   - {}", line(&p.services[1])),
                format!("   - {}", line(&p.services[2])),
                "   - wait until `systemctl is-active docker.service` says active".to_string(),
            ]
        );
        assert_eq!(
            calls(&restarted)[0].1.join(" "),
            "systemctl try-restart --no-block amazon-cloudwatch-agent.service"
        );
    }

    /// Without logs there is no CloudWatch agent to start; explicit logs make it required.
    #[test]
    fn the_services_follow_the_logs_setting() {
        let p = plan(json!({"Cluster": "prod", "Logs": false}), true);
        let units: Vec<&str> = p.services.iter().map(|s| s.unit.as_str()).collect();
        assert_eq!(units, [DOCKER, ECS]);
        assert_eq!(
            services_step(&p)[0],
            "   - systemctl reset-failed docker.service; systemctl enable docker.service; systemctl start --no-block docker.service"
        );
        let p = plan(json!({"Cluster": "prod", "Logs": {"Enabled": true}}), true);
        assert_eq!(p.services[0].unit, logs_config::UNIT);
        assert!(p.services[0].required);
        assert!(!services_step(&p)[0].contains("skipped"));
    }

    /// The signal goes to the signal resource, with the instance id as its unique id; none with
    /// `--no-signal`.
    #[test]
    fn the_signal_step() {
        let p = plan(json!({"Cluster": "prod"}), true);
        assert_eq!(
            p.signal,
            Some(SignalSpec {
                stack: "app".into(),
                resource: "Group".into(),
                unique_id: "i-0123456789abcdef0".into(),
            })
        );
        assert_eq!(p.join.cluster, "prod");
        assert_eq!(p.join.timeout_secs, settings::DEFAULT_TIMEOUT_SECS);
        let p = plan(json!({"Cluster": "prod"}), false);
        assert_eq!(p.signal, None);
        assert!(p
            .text_unchecked()
            .contains("\n6. no signal (--no-signal)\n"));
    }
}
