//! Init `services`: `systemd` and `sysvinit` maps with `enabled`, `ensureRunning` and restart
//! triggers. A service is restarted when something it lists changed earlier in the same config,
//! whatever its state or `ensureRunning`, as cfn-init does. These are the template's own services, so starts and stops
//! block (bounded); the ECS units are started by the boot sequence, never here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::exec::{self, argv, Ctx};
use super::packages::MANAGERS;
use super::Changes;
use crate::config::settings::{kind, short};
use crate::error::{Error, Result};
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
    pub packages: BTreeMap<String, Vec<String>>,
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

pub fn parse(v: &Value, path: &str) -> Result<Vec<ServiceSpec>> {
    let map = v
        .as_object()
        .ok_or_else(|| Error::invalid(path, format!("must be a mapping, got {}", kind(v))))?;
    let mut out = Vec::new();
    for (manager, services) in map {
        let mpath = format!("{path}.{manager}");
        if manager == "windows" {
            // cfn-init fails on it off Windows ("Cannot modify windows services without
            // pywin32", service_tools.py:85-86@25fabe91).
            return Err(Error::invalid(
                mpath,
                format!(
                    "'windows' services cannot be managed on Linux (cfn-init fails on them too), value {}",
                    short(services)
                ),
            ));
        }
        let Some(kind_of) = ServiceManager::from_name(manager) else {
            // cfn-init: "Unsupported service manager" warning, skipped (construction.py:290-291).
            super::unknown(&mpath, "service manager", manager, KINDS)?;
            continue;
        };
        let services = services.as_object().ok_or_else(|| {
            Error::invalid(&mpath, format!("must be a mapping, got {}", kind(services)))
        })?;
        for (name, spec) in services {
            out.push(parse_one(kind_of, name, spec, &format!("{mpath}.{name}"))?);
        }
    }
    // Document order, managers and services alike, as cfn-init iterates its mappings
    // (construction.py:286, systemd_tool.py:74@25fabe91; `preserve_order` keeps it).
    Ok(out)
}

fn parse_one(manager: ServiceManager, name: &str, spec: &Value, path: &str) -> Result<ServiceSpec> {
    if name.is_empty() || name.starts_with('-') || name.contains(['/', ' ']) {
        return Err(Error::invalid(
            path,
            format!("'{name}' is not a service name"),
        ));
    }
    let map = spec
        .as_object()
        .ok_or_else(|| Error::invalid(path, format!("must be a mapping, got {}", short(spec))))?;
    for k in map.keys() {
        if !KEYS.contains(&k.as_str()) {
            super::unknown(&format!("{path}.{k}"), "key", k, KEYS)?;
        }
    }
    // Present (even as null) means "set it", as cfn-init's `"enabled" in properties`.
    let boolean = |k: &str| -> Result<Option<bool>> {
        map.get(k)
            .map(|v| crate::config::settings::init_boolean(v, &format!("{path}.{k}")))
            .transpose()
    };
    let list = |k: &str| -> Result<Vec<String>> {
        match map.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    other => Err(Error::invalid(
                        format!("{path}.{k}[{i}]"),
                        format!("must be a non-empty string, got {}", short(other)),
                    )),
                })
                .collect(),
            Some(other) => Err(Error::invalid(
                format!("{path}.{k}"),
                format!("must be a list, got {}", short(other)),
            )),
        }
    };
    let packages = match map.get("packages") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (mgr, names) in m {
                let p = format!("{path}.packages.{mgr}");
                if !MANAGERS.contains(&mgr.as_str()) {
                    // Nothing is ever installed by it, so it never triggers (as in cfn-init).
                    super::unknown(&p, "package manager", mgr, MANAGERS)?;
                    continue;
                }
                let names = match names {
                    Value::Array(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| match x {
                            Value::String(s) => Ok(s.clone()),
                            other => Err(Error::invalid(
                                format!("{p}[{i}]"),
                                format!("must be a package name, got {}", short(other)),
                            )),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    other => {
                        return Err(Error::invalid(
                            p,
                            format!("must be a list of package names, got {}", short(other)),
                        ))
                    }
                };
                out.insert(mgr.clone(), names);
            }
            out
        }
        Some(other) => {
            return Err(Error::invalid(
                format!("{path}.packages"),
                format!(
                    "must be a mapping of package manager to names, got {}",
                    short(other)
                ),
            ))
        }
    };
    Ok(ServiceSpec {
        manager,
        name: name.to_string(),
        enabled: boolean("enabled")?,
        ensure_running: boolean("ensureRunning")?,
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
    use serde_json::json;

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
        let mut c = Changes::default();
        assert_eq!(s.triggers.fired(&c), None);
        c.packages
            .entry("apt".into())
            .or_default()
            .insert("nginx".into());
        assert_eq!(s.triggers.fired(&c), None);
        c.packages
            .entry("yum".into())
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
        let e = crate::init::strictly(|| parse(&json!({"systemd": {"x": {"file": []}}}), "p"))
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
        let e = crate::init::strictly(|| {
            parse(&json!({"systemd": {"x": {"packages": {"brew": []}}}}), "p")
        })
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
