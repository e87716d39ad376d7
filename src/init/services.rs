//! Init `services`: `systemd` and `sysvinit` maps with `enabled`, `ensureRunning` and restart
//! triggers. A service is restarted when something it lists changed earlier in the same config,
//! whatever its state or `ensureRunning`, as cfn-init does. These are the template's own services, so starts and stops
//! block (bounded); the ECS units are started by the boot sequence, never here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::exec::{self, argv, Ctx};
use super::packages::{Manager, MANAGERS};
use super::Changes;
use crate::error::Result;
use crate::input::Node;
use crate::sys::systemctl;

pub const KINDS: &[&str] = &["systemd", "sysvinit"];

/// The service managers of [`KINDS`] (cfn-init's `windows` is refused when parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceManager {
    Systemd,
    Sysvinit,
}

impl ServiceManager {
    /// The manager named `name` in the template, if it is one of [`KINDS`].
    pub fn from_name(name: &str) -> Option<ServiceManager> {
        match name {
            "systemd" => Some(ServiceManager::Systemd),
            "sysvinit" => Some(ServiceManager::Sysvinit),
            _ => None,
        }
    }
}

impl std::fmt::Display for ServiceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceManager::Systemd => "systemd",
            ServiceManager::Sysvinit => "sysvinit",
        })
    }
}
const KEYS: &[&str] = &[
    "enabled",
    "ensureRunning",
    "files",
    "sources",
    "packages",
    "commands",
    "users",
    "groups",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceSpec {
    pub manager: ServiceManager,
    pub name: String,
    pub enabled: Option<bool>,
    pub ensure_running: Option<bool>,
    #[serde(skip_serializing_if = "Triggers::is_empty")]
    pub triggers: Triggers,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Triggers {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<Manager, Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Triggers {
    pub fn is_empty(&self) -> bool {
        self == &Triggers::default()
    }

    /// The first thing listed here that changed in this config, for the log.
    fn fired(&self, c: &Changes) -> Option<String> {
        let hit = |list: &[String], set: &BTreeSet<String>, what: &str| {
            list.iter()
                .find(|x| set.contains(*x))
                .map(|x| format!("{what} {x}"))
        };
        hit(&self.files, &c.files, "file")
            .or_else(|| hit(&self.sources, &c.sources, "source"))
            .or_else(|| {
                self.packages.iter().find_map(|(m, names)| {
                    c.packages
                        .get(m)
                        .and_then(|set| hit(names, set, &format!("{m} package")))
                })
            })
            .or_else(|| hit(&self.commands, &c.commands, "command"))
            .or_else(|| hit(&self.users, &c.users, "user"))
            .or_else(|| hit(&self.groups, &c.groups, "group"))
    }
}

/// The `services` section: managers, then services, in document order, as cfn-init iterates
/// its mappings (construction.py:286, systemd_tool.py:74@25fabe91; `preserve_order` keeps it).
pub fn parse(section: &Node) -> Result<Vec<ServiceSpec>> {
    let mut out = Vec::new();
    for (name, services) in section.entries()? {
        if name == "windows" {
            // cfn-init fails on it off Windows ("Cannot modify windows services without
            // pywin32", service_tools.py:85-86@25fabe91).
            return Err(services.error(format!(
                "'windows' services cannot be managed on Linux (cfn-init fails on them too), value {}",
                services.short()
            )));
        }
        let Some(manager) = ServiceManager::from_name(name) else {
            // cfn-init: "Unsupported service manager" warning, skipped (construction.py:290-291).
            section.unknown(name, "service manager", KINDS)?;
            continue;
        };
        for (name, spec) in services.entries()? {
            out.push(parse_one(manager, name, &spec)?);
        }
    }
    Ok(out)
}

fn parse_one(manager: ServiceManager, name: &str, spec: &Node) -> Result<ServiceSpec> {
    if name.is_empty() || name.starts_with('-') || name.contains(['/', ' ']) {
        return Err(spec.error(format!("'{name}' is not a service name")));
    }
    spec.only_keys(KEYS)?;
    // Present (even as null) means "set it", as cfn-init's `"enabled" in properties`.
    let list = |k: &str| -> Result<Vec<String>> {
        Ok(spec
            .opt(k, |n| names(n, "a list", "a non-empty string", false))?
            .unwrap_or_default())
    };
    let packages = match spec.get("packages") {
        None => BTreeMap::new(),
        Some(node) => {
            let mut out = BTreeMap::new();
            for (mgr, list) in node.entries()? {
                let Some(mgr) = Manager::ALL.into_iter().find(|m| m.name() == mgr) else {
                    // Nothing is ever installed by it, so it never triggers (as in cfn-init).
                    node.unknown(mgr, "package manager", MANAGERS)?;
                    continue;
                };
                out.insert(
                    mgr,
                    names(&list, "a list of package names", "a package name", true)?,
                );
            }
            out
        }
    };
    Ok(ServiceSpec {
        manager,
        name: name.to_string(),
        enabled: spec.opt("enabled", Node::cfn_bool)?,
        ensure_running: spec.opt("ensureRunning", Node::cfn_bool)?,
        triggers: Triggers {
            files: list("files")?,
            sources: list("sources")?,
            packages,
            commands: list("commands")?,
            users: list("users")?,
            groups: list("groups")?,
        },
    })
}

/// A list of names (`list`: how the error calls it; `item`: how it calls one name, empty or
/// not as `empty` says). The value is shown: a name is no secret.
fn names(node: &Node, list: &str, item: &str, empty: bool) -> Result<Vec<String>> {
    if !node.value().is_array() {
        return Err(node.error(format!("must be {list}, got {}", node.short())));
    }
    node.list()?
        .iter()
        .map(|n| match n.value() {
            Value::String(s) if empty || !s.is_empty() => Ok(s.clone()),
            _ => Err(n.error(format!("must be {item}, got {}", n.short()))),
        })
        .collect()
}

/// Applies the services; `done` gets what was done to each.
pub async fn apply(
    services: &[ServiceSpec],
    config: &str,
    changes: &Changes,
    done: &mut BTreeMap<String, Vec<&'static str>>,
    runner: &dyn crate::sys::process::Runner,
) -> Result<()> {
    let ctx = Ctx {
        config,
        section: "services",
        runner,
    };
    for s in services {
        let n = s.name.as_str();
        let systemd = s.manager == ServiceManager::Systemd;
        if let Some(on) = s.enabled {
            let a = if systemd {
                Some(systemctl::verb(if on { "enable" } else { "disable" }, n))
            } else if on_path("chkconfig") {
                Some(argv(["chkconfig", n, if on { "on" } else { "off" }]))
            } else if on_path("update-rc.d") {
                // Debian family (service_tools.py:238-251,303-328@25fabe91).
                Some(argv([
                    "update-rc.d",
                    n,
                    if on { "enable" } else { "disable" },
                ]))
            } else {
                // cfn-init logs this and goes on (service_tools.py:228-232@25fabe91).
                tracing::error!(
                    config,
                    service = n,
                    "could not {} the service: neither chkconfig nor update-rc.d is available",
                    if on { "enable" } else { "disable" }
                );
                None
            };
            if let Some(a) = a {
                exec::must(ctx, &a, &[], exec::CHANGE).await?;
                done.entry(s.name.clone())
                    .or_default()
                    .push(if on { "enable" } else { "disable" });
            }
        }
        // cfn-init (systemd_tool.py:74-106, service_tools.py:153-176@25fabe91): a service that
        // lists something changed in this config is restarted whatever its state and whatever
        // `ensureRunning` says; `ensureRunning` is consulted only when nothing forced a restart.
        if let Some(why) = s.triggers.fired(changes) {
            tracing::info!(config, service = n, trigger = %why, "restarting");
            if systemd {
                // The unit file may be one of the files that changed.
                exec::must(ctx, &systemctl::daemon_reload(), &[], exec::CHANGE).await?;
                // Also starts a stopped unit.
                exec::must(
                    ctx,
                    &systemctl::verb("reload-or-restart", n),
                    &[],
                    exec::CHANGE,
                )
                .await?;
            } else {
                exec::must(
                    ctx,
                    &sysv(n, "restart", on_path("service")),
                    &[],
                    exec::CHANGE,
                )
                .await?;
            }
            done.entry(s.name.clone()).or_default().push("restart");
            continue;
        }
        let Some(want_running) = s.ensure_running else {
            continue;
        };
        // Running is what the exit status says (`is-active` 0, `service NAME status` 0).
        let running = if systemd {
            exec::call(ctx, &systemctl::is_active(n), &[], exec::QUERY).await?
        } else {
            exec::call(
                ctx,
                &sysv(n, "status", on_path("service")),
                &[],
                exec::QUERY,
            )
            .await?
        }
        .success();
        let verb = match (want_running, running) {
            (true, false) => "start",
            (false, true) => "stop",
            _ => {
                tracing::info!(config, service = n, running, "nothing to do");
                continue;
            }
        };
        let a = if systemd {
            systemctl::verb(verb, n)
        } else {
            sysv(n, verb, on_path("service"))
        };
        exec::must(ctx, &a, &[], exec::CHANGE).await?;
        done.entry(s.name.clone()).or_default().push(verb);
    }
    Ok(())
}

/// A sysvinit action: `service NAME VERB`, or without a `service` command the init script
/// itself, `/etc/init.d/NAME VERB`, as cfn-init's `_get_service_executable`
/// (service_tools.py:253-274@25fabe91).
fn sysv(name: &str, verb: &str, has_service: bool) -> Vec<String> {
    if has_service {
        argv(["service", name, verb])
    } else {
        vec![format!("/etc/init.d/{name}"), verb.to_string()]
    }
}

/// Whether `tool` is an executable file in a directory of `PATH` (how [`exec::call`] finds it).
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Keys;
    use serde_json::json;
    use serde_json::Value;

    fn parse(v: &Value, path: &str) -> Result<Vec<ServiceSpec>> {
        super::parse(&Node::root(v, path, Keys::Warn))
    }

    fn strictly(v: &Value, path: &str) -> Result<Vec<ServiceSpec>> {
        super::parse(&Node::root(v, path, Keys::Strict))
    }

    #[test]
    fn parse_and_triggers() {
        let v = parse(
            &json!({"sysvinit": {"nginx": {
                "enabled": "true", "ensureRunning": true,
                "files": ["/etc/nginx/nginx.conf"], "sources": ["/var/www/html"],
                "packages": {"yum": ["nginx"]}, "commands": ["01_x"]
            }}, "systemd": {"a": {"enabled": false}}}),
            "I.c.services",
        )
        .unwrap();
        assert_eq!(
            v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["nginx", "a"]
        );
        let s = &v[0];
        assert_eq!((s.enabled, s.ensure_running), (Some(true), Some(true)));
        // Keyed by the enum, written as the template's name (the dry run's JSON, init.json).
        assert_eq!(
            serde_json::to_value(&s.triggers).unwrap()["packages"],
            json!({"yum": ["nginx"]})
        );
        let mut c = Changes::default();
        assert_eq!(s.triggers.fired(&c), None);
        c.packages
            .entry(Manager::Apt)
            .or_default()
            .insert("nginx".into());
        assert_eq!(s.triggers.fired(&c), None);
        c.packages
            .entry(Manager::Yum)
            .or_default()
            .insert("nginx".into());
        assert_eq!(s.triggers.fired(&c).as_deref(), Some("yum package nginx"));
        c.files.insert("/etc/nginx/nginx.conf".into());
        assert_eq!(
            s.triggers.fired(&c).as_deref(),
            Some("file /etc/nginx/nginx.conf")
        );
    }

    #[test]
    fn sysvinit_without_service_runs_the_init_script() {
        assert_eq!(sysv("web", "start", true), ["service", "web", "start"]);
        assert_eq!(sysv("web", "status", false), ["/etc/init.d/web", "status"]);
    }

    #[test]
    fn errors_name_key_and_value() {
        let e = parse(&json!({"windows": {"x": {}}}), "I.c.services")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.c.services.windows") && e.contains("'windows'"),
            "{e}"
        );
        let v = parse(
            &json!({"systemd": {"x": {"ensureRunning": "yes", "enabled": "on"}}}),
            "I.c.services",
        )
        .unwrap();
        assert_eq!(
            (v[0].ensure_running, v[0].enabled),
            (Some(true), Some(false))
        );
        let e = strictly(&json!({"systemd": {"x": {"file": []}}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.systemd.x.file: unknown key"), "{e}");
        let e = parse(&json!({"systemd": {"x": {"files": "/etc/a"}}}), "p")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.systemd.x.files") && e.contains("/etc/a"),
            "{e}"
        );
        let e = strictly(&json!({"systemd": {"x": {"packages": {"brew": []}}}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.systemd.x.packages.brew"), "{e}");
        // Without --strict: a warning, and the key is ignored.
        let v = parse(
            &json!({"upstart": {"y": {}}, "systemd": {"x": {"file": [], "packages": {"brew": ["a"]}}}}),
            "p",
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].triggers.is_empty());
    }
}
