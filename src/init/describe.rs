//! The dry-run text of the sections applied around `files` and `commands`: what would be
//! checked and what would run, with the exact command lines.

use super::Config;

/// packages, groups, users: applied before files.
pub fn before_files(c: &Config, auth: &super::auth::AuthConfig) -> Vec<String> {
    let mut out = Vec::new();
    for set in &c.packages {
        let m = set.manager;
        let specs: Vec<String> = set
            .packages
            .iter()
            .map(|p| match &p.source {
                Some(src) => {
                    let with = auth.for_url(src).map(|(name, _)| name);
                    if super::packages::downloads_first(src, with) {
                        let how = with
                            .map(|n| format!("with authentication {n}"))
                            .unwrap_or_else(|| "with the instance's credentials".into());
                        format!("{} from {src} (downloaded {how} first)", p.name)
                    } else {
                        format!("{} from {src}", p.name)
                    }
                }
                None => p.spec(m),
            })
            .collect();
        // The command lines init/packages.rs runs, from the same builders.
        let how = super::packages::install(m).line();
        out.push(format!(
            "- packages ({m}): {} (those not installed, with `{how}`)",
            specs.join(", ")
        ));
        let older = set.packages.iter().any(|p| p.version.is_some());
        if let Some(how) = super::packages::downgrade(m).filter(|_| older) {
            out.push(format!(
                "  a version older than the installed one with `{}`",
                how.line()
            ));
        }
    }
    for g in &c.groups {
        out.push(format!(
            "- group {}{} (groupadd -r if absent)",
            g.name,
            g.gid.map(|id| format!(" gid {id}")).unwrap_or_default()
        ));
    }
    for u in &c.users {
        let mut d = format!("- user {}", u.name);
        if let Some(uid) = u.uid {
            d += &format!(" uid {uid}");
        }
        if !u.groups.is_empty() {
            d += &format!(" groups {}", u.groups.join(","));
        }
        if let Some(h) = &u.home_dir {
            d += &format!(" home {h}");
        }
        d += " (system user, /sbin/nologin; usermod -G if it exists)";
        out.push(d);
    }
    out
}

/// services: applied last.
pub fn after_commands(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for s in &c.services {
        let mut actions = Vec::new();
        match s.enabled {
            Some(true) => actions.push("enable"),
            Some(false) => actions.push("disable"),
            None => {}
        }
        match s.ensure_running {
            Some(true) => actions.push("ensure running"),
            Some(false) => actions.push("ensure stopped"),
            None => {}
        }
        let mut d = format!(
            "- {} service {}: {}",
            s.manager,
            s.name,
            if actions.is_empty() {
                "nothing".to_string()
            } else {
                actions.join(", ")
            }
        );
        let t = &s.triggers;
        if !t.is_empty() && s.ensure_running == Some(true) {
            let mut what: Vec<String> = Vec::new();
            what.extend(t.files.iter().map(|x| format!("file {x}")));
            what.extend(t.sources.iter().map(|x| format!("source {x}")));
            for (m, names) in &t.packages {
                what.extend(names.iter().map(|x| format!("{m} package {x}")));
            }
            what.extend(t.commands.iter().map(|x| format!("command {x}")));
            what.extend(t.users.iter().map(|x| format!("user {x}")));
            what.extend(t.groups.iter().map(|x| format!("group {x}")));
            d += &format!("; restarted if this config changes {}", what.join(", "));
        }
        out.push(d);
    }
    out
}
