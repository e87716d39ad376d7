//! The plan: everything a run will do, decided before anything is done. A dry run prints it; a
//! real run executes it. Built once from the metadata, so the two cannot disagree.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ecs_config::{self, AgentConfig};
use crate::fs::Root;
use crate::identity::Identity;
use crate::init::{CommandLine, InitPlan};
use crate::join::JoinSpec;
use crate::logs_config;
use crate::metadata::ResourceMetadata;
use crate::services::{ServiceAction, DOCKER, ECS};
use crate::settings::Settings;
use crate::signal::SignalSpec;

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
    pub fn build(i: Inputs<'_>) -> Plan {
        let logs_config = logs_config::render(
            &i.settings.logs,
            &logs_config::default_prefix(i.stack, i.signal_resource),
        )
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
            });
        }
        for unit in [DOCKER, ECS] {
            services.push(ServiceAction {
                unit: unit.into(),
                required: true,
            });
        }
        let signal = i.signal.then(|| SignalSpec {
            stack: i.stack.to_string(),
            resource: i.signal_resource.to_string(),
            unique_id: i.identity.instance_id.clone(),
        });
        Plan {
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
        }
    }

    /// The plan as it may be shown: agent secrets replaced. Init file contents are shown as
    /// written in the template (that is where they came from).
    pub fn redacted(&self) -> Plan {
        let mut p = self.clone();
        for (k, v) in &mut p.agent_config.config.entries {
            if crate::agent_keys::is_secret(k) {
                *v = "<redacted>".into();
            }
        }
        p
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.redacted()).expect("a plan always serialises") + "\n"
    }

    pub fn to_text(&self) -> String {
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
            id.instance_id, id.instance_type, id.availability_zone, id.account_id
        );
        let _ = writeln!(
            w,
            "metadata: {}{}",
            p.metadata_origin,
            p.resource_type
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default()
        );
        if p.root != "/" {
            let _ = writeln!(w, "root: every path below is written under {}", p.root);
        }

        let _ = writeln!(w, "\n1. {}", crate::init::BLOCK);
        if p.init.configs.is_empty() {
            let _ = writeln!(w, "   (no Init configs to run)");
        } else if !p.init.configsets.is_empty() {
            let _ = writeln!(
                w,
                "   configSets {} -> configs {}",
                p.init.configsets.join(","),
                p.init
                    .configs
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for line in p.init.authentication.describe() {
            let _ = writeln!(w, "   authentication {line}");
        }
        for c in &p.init.configs {
            let _ = writeln!(w, "   config '{}':", c.name);
            for line in crate::init::describe::before_files(c, &p.init.authentication) {
                let _ = writeln!(w, "   {line}");
            }
            for src in &c.sources {
                let _ = writeln!(
                    w,
                    "   - unpack {} into {}{}",
                    src.url,
                    src.target,
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
                        f.path,
                        f.content.as_text().unwrap_or("?")
                    );
                    continue;
                }
                let _ = writeln!(
                    w,
                    "   - file {} (mode {}, owner {}:{})",
                    f.path,
                    f.mode
                        .map_or("unchanged, 0644 if new".to_string(), |m| format!("{m:04o}")),
                    f.owner.as_deref().unwrap_or("unchanged"),
                    f.group.as_deref().unwrap_or("unchanged"),
                );
                match &f.source {
                    Some(url) => {
                        let _ = writeln!(
                            w,
                            "       from {url}{}{}",
                            f.authentication
                                .as_deref()
                                .map(|a| format!(" (authentication {a})"))
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
                let _ = writeln!(w, "   - command {}: {}", cmd.key, line);
                if let Some(t) = &cmd.test {
                    let t = match t {
                        CommandLine::Shell(s) => s.clone(),
                        CommandLine::Exec(argv) => argv.join(" "),
                    };
                    let _ = writeln!(w, "       only if `{t}` succeeds");
                }
                if let Some(user) = &cmd.runas {
                    let _ = writeln!(w, "       as {user} (su {user} -c ...)");
                }
                if let Some(cwd) = &cmd.cwd {
                    let _ = writeln!(w, "       cwd: {cwd}");
                }
                match &cmd.env {
                    Some(env) => {
                        let vars: Vec<String> =
                            env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let _ = writeln!(
                            w,
                            "       env (replaces the environment): {}",
                            vars.join(" ")
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
                let _ = writeln!(w, "   {line}");
            }
        }

        let ac = &p.agent_config;
        let _ = writeln!(
            w,
            "\n2. write {} (mode {:04o}; keys already in the file and not set here are kept after these)",
            ac.path,
            ac.config.mode(&[])
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
            crate::handoff::UNIT
        );
        let _ = writeln!(w, "\n4. services");
        for s in &p.services {
            let _ = writeln!(
                w,
                "   - systemctl enable {u}; systemctl start --no-block {u}{}",
                if s.required {
                    ""
                } else {
                    "   (skipped with a warning if not installed)"
                },
                u = s.unit
            );
        }
        let _ = writeln!(
            w,
            "   - wait until `systemctl is-active {DOCKER}` says active"
        );

        let j = &p.join;
        let _ = writeln!(
            w,
            "\n5. wait up to {}s for {}/v1/metadata to report cluster '{}' with a ContainerInstanceArn,\n   \
             failing at once if {ECS} or {DOCKER} fails; then ecs:DescribeContainerInstances must say ACTIVE, agentConnected",
            j.timeout_secs,
            j.introspection_url.trim_end_matches('/'),
            j.cluster
        );

        match &p.signal {
            Some(s) => {
                let _ = writeln!(
                    w,
                    "\n6. cloudformation:SignalResource stack={} resource={} unique-id={} status=SUCCESS\n   \
                     (FAILURE, with the reason in the log, if any step above fails)",
                    s.stack, s.resource, s.unique_id
                );
            }
            None => {
                let _ = writeln!(w, "\n6. no signal (--no-signal)");
            }
        }
        o
    }
}

fn content(w: &mut String, text: Option<&str>, len: usize) {
    match text {
        Some(t) => {
            for line in t.lines() {
                let _ = writeln!(w, "       | {line}");
            }
        }
        None => {
            let _ = writeln!(w, "       ({len} bytes of binary content)");
        }
    }
}
