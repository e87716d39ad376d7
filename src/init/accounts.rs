//! Init `groups` and `users`, created as cfn-init creates them: system accounts
//! (`groupadd -r`, `useradd -M -r --shell /sbin/nologin`), in alphabetical order. An existing
//! account with a different id is an error; an existing user's groups are replaced
//! (`usermod -G`) when they differ, its home directory when it differs; a user's groups must
//! exist. A created or modified account is a change for restart triggers.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::exec::{self, argv, Ctx};
use crate::error::{Error, Result};
use crate::input::Node;

const GROUP_KEYS: &[&str] = &["gid"];
const USER_KEYS: &[&str] = &["uid", "groups", "homeDir"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserSpec {
    pub name: String,
    pub uid: Option<u32>,
    pub groups: Vec<String>,
    pub home_dir: Option<String>,
}

/// The accounts of a `groups` or `users` section, alphabetical (as cfn-init applies them),
/// each checked against `keys`. `name:` with nothing under it (YAML for `name: {}`) is an
/// account with no settings.
fn entries<'a>(section: &Node<'a>, keys: &[&str]) -> Result<Vec<(&'a str, Node<'a>)>> {
    let mut out = Vec::new();
    for (name, spec) in section.entries()? {
        if !valid_name(name) {
            return Err(spec.error(format!(
                "'{name}' is not a valid account name (letters, digits, '.', '_', '-'; not starting with '-')"
            )));
        }
        if !spec.value().is_null() {
            spec.only_keys(keys)?;
        }
        out.push((name, spec));
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    Ok(out)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && !n.starts_with('-')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'))
}

pub fn parse_groups(section: &Node) -> Result<Vec<GroupSpec>> {
    entries(section, GROUP_KEYS)?
        .into_iter()
        .map(|(name, spec)| {
            Ok(GroupSpec {
                name: name.to_string(),
                gid: spec.opt("gid", Node::id)?,
            })
        })
        .collect()
}

pub fn parse_users(section: &Node) -> Result<Vec<UserSpec>> {
    entries(section, USER_KEYS)?
        .into_iter()
        .map(|(name, spec)| {
            let groups = spec
                .opt("groups", |n| {
                    if !n.value().is_array() {
                        return Err(
                            n.error(format!("must be a list of group names, got {}", n.short()))
                        );
                    }
                    n.list()?
                        .iter()
                        .map(|g| match g.value() {
                            Value::String(s) if valid_name(s) => Ok(s.clone()),
                            _ => Err(g.error(format!("must be a group name, got {}", g.short()))),
                        })
                        .collect::<Result<Vec<_>>>()
                })?
                .unwrap_or_default();
            let home_dir = spec.opt("homeDir", |n| match n.value() {
                Value::String(s) if s.starts_with('/') => Ok(s.clone()),
                _ => Err(n.error(format!("must be an absolute path, got {}", n.short()))),
            })?;
            Ok(UserSpec {
                name: name.to_string(),
                uid: spec.opt("uid", Node::id)?,
                groups,
                home_dir,
            })
        })
        .collect()
}

/// `getent DB NAME`: the entry's fields, or `None` when it does not exist (exit 2).
async fn getent(ctx: Ctx<'_>, db: &str, name: &str) -> Result<Option<Vec<String>>> {
    let a = argv(["getent", db, name]);
    let answer = exec::call(ctx, &a, &[], exec::QUERY).await?;
    match answer.code {
        Some(0) => Ok(Some(
            answer
                .stdout
                .lines()
                .next()
                .unwrap_or_default()
                .split(':')
                .map(str::to_string)
                .collect(),
        )),
        Some(2) => Ok(None),
        _ => Err(exec::failed(ctx, &a, answer)),
    }
}

/// The id of an existing group or user (the third `getent` field); an error naming `key` when
/// the metadata asks for another id: cfn-init would not renumber it either.
fn existing_id(
    fields: &[String],
    kind: &str,
    name: &str,
    want: Option<u32>,
    key: &str,
) -> Result<String> {
    let current = fields.get(2).cloned().unwrap_or_default();
    match want {
        Some(want) if current != want.to_string() => Err(Error::invalid(
            key,
            format!(
                "{kind} '{name}' already exists with {} {current}, not {want}",
                if kind == "group" { "gid" } else { "uid" }
            ),
        )),
        _ => Ok(current),
    }
}

/// The gids of the groups that list `user` as a member (`getent group`), as cfn-init's
/// `_gids_for_user` reads them: the primary group counts only when it lists the user too.
async fn member_gids(ctx: Ctx<'_>, user: &str) -> Result<BTreeSet<String>> {
    let a = argv(["getent", "group"]);
    let answer = exec::call(ctx, &a, &[], exec::QUERY).await?;
    if !answer.success() {
        return Err(exec::failed(ctx, &a, answer));
    }
    Ok(answer
        .stdout
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let members = f.get(3)?;
            members
                .split(',')
                .any(|m| m.trim() == user)
                .then(|| f[2].to_string())
        })
        .collect())
}

/// Applies a config's groups, then its users (a user's groups may be among those just
/// created), as cfn-init orders them; `changes` gets the accounts created or modified.
pub async fn apply(
    groups: &[GroupSpec],
    users: &[UserSpec],
    config: &str,
    path: &str,
    changes: &mut super::Changes,
    runner: &dyn crate::sys::process::Runner,
) -> Result<()> {
    let ctx = |section| Ctx {
        config,
        section,
        runner,
    };
    let groups_path = format!("{path}.groups");
    apply_groups(ctx("groups"), groups, &groups_path, &mut changes.groups).await?;
    let users_path = format!("{path}.users");
    apply_users(ctx("users"), users, &users_path, &mut changes.users).await
}

/// Runs `a` on the account `name` (groupadd, useradd, usermod: the name comes last), which
/// creates or modifies it: a change for restart triggers.
async fn change(
    ctx: Ctx<'_>,
    mut a: Vec<String>,
    name: &str,
    changed: &mut BTreeSet<String>,
) -> Result<()> {
    a.push(name.to_string());
    exec::must(ctx, &a, &[], exec::CHANGE).await?;
    changed.insert(name.to_string());
    Ok(())
}

async fn apply_groups(
    ctx: Ctx<'_>,
    groups: &[GroupSpec],
    path: &str,
    created: &mut BTreeSet<String>,
) -> Result<()> {
    for g in groups {
        match getent(ctx, "group", &g.name).await? {
            Some(fields) => {
                let current = existing_id(
                    &fields,
                    "group",
                    &g.name,
                    g.gid,
                    &format!("{path}.{}.gid", g.name),
                )?;
                tracing::info!(config = ctx.config, group = %g.name, gid = %current, "group exists");
            }
            None => {
                let mut a = argv(["groupadd", "-r"]);
                if let Some(gid) = g.gid {
                    a.extend(argv(["-g", &gid.to_string()]));
                }
                change(ctx, a, &g.name, created).await?;
            }
        }
    }
    Ok(())
}

async fn apply_users(
    ctx: Ctx<'_>,
    users: &[UserSpec],
    path: &str,
    // Users created or modified.
    created: &mut BTreeSet<String>,
) -> Result<()> {
    for u in users {
        let upath = format!("{path}.{}", u.name);
        let mut want_gids = BTreeSet::new();
        // In the order given: `-G` takes these gids, as cfn-init's `_get_gids` builds it.
        let mut gid_list = Vec::new();
        for (i, g) in u.groups.iter().enumerate() {
            let Some(fields) = getent(ctx, "group", g).await? else {
                return Err(Error::invalid(
                    format!("{upath}.groups[{i}]"),
                    format!(
                        "group '{g}' does not exist (create it in this config's or an earlier config's groups)"
                    ),
                ));
            };
            let gid = fields.get(2).cloned().unwrap_or_default();
            want_gids.insert(gid.clone());
            gid_list.push(gid);
        }
        let groups = gid_list.join(",");
        match getent(ctx, "passwd", &u.name).await? {
            Some(fields) => {
                existing_id(&fields, "user", &u.name, u.uid, &format!("{upath}.uid"))?;
                // As cfn-init (posix_security.py:85-121@25fabe91): the supplementary groups
                // become exactly these when their gids differ (as a set) from the groups that
                // list the user now, the home directory changes when it differs; a user
                // modified so is a change for restart triggers, one left alone is not.
                let mut a = argv(["usermod"]);
                if !u.groups.is_empty() && member_gids(ctx, &u.name).await? != want_gids {
                    a.extend(argv(["-G", &groups]));
                }
                if let Some(h) = &u.home_dir {
                    if fields.get(5) != Some(h) {
                        a.extend(argv(["-d", h]));
                    }
                }
                if a.len() == 1 {
                    tracing::info!(config = ctx.config, user = %u.name, "user exists as asked");
                } else {
                    change(ctx, a, &u.name, created).await?;
                }
            }
            None => {
                // cfn-init's order (posix_security.py:126-140@25fabe91): -d, -u, -G gids.
                let mut a = argv(["useradd", "-M", "-r", "--shell", "/sbin/nologin"]);
                if let Some(h) = &u.home_dir {
                    a.extend(argv(["-d", h]));
                }
                if let Some(uid) = u.uid {
                    a.extend(argv(["-u", &uid.to_string()]));
                }
                if !u.groups.is_empty() {
                    a.extend(argv(["-G", &groups]));
                }
                change(ctx, a, &u.name, created).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_groups(v: &Value, path: &str) -> Result<Vec<GroupSpec>> {
        super::parse_groups(&crate::init::test_node(v, path))
    }

    fn parse_users(v: &Value, path: &str) -> Result<Vec<UserSpec>> {
        super::parse_users(&crate::init::test_node(v, path))
    }
    use serde_json::json;

    #[test]
    fn parse_sorted_and_typed() {
        let g = parse_groups(&json!({"b": {}, "a": {"gid": "45"}, "c": null}), "p").unwrap();
        assert_eq!(
            g,
            [
                GroupSpec {
                    name: "a".into(),
                    gid: Some(45)
                },
                GroupSpec {
                    name: "b".into(),
                    gid: None
                },
                GroupSpec {
                    name: "c".into(),
                    gid: None
                },
            ]
        );
        let u = parse_users(
            &json!({"myUser": {"groups": ["groupOne", "groupTwo"], "uid": 50, "homeDir": "/tmp"}}),
            "p",
        )
        .unwrap();
        assert_eq!(u[0].uid, Some(50));
        assert_eq!(u[0].groups, ["groupOne", "groupTwo"]);
        assert_eq!(u[0].home_dir.as_deref(), Some("/tmp"));
    }

    #[test]
    fn errors_name_key_and_value() {
        let e = parse_groups(&json!({"a": {"gid": "x1"}}), "I.c.groups")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.c.groups.a.gid") && e.contains("\"x1\""),
            "{e}"
        );
        assert!(parse_groups(&json!({"a": {"gdi": 1}}), "I.c.groups").is_ok());
        let v = json!({"a": {"gdi": 1}});
        let e = super::parse_groups(&Node::root(&v, "I.c.groups", crate::input::Keys::Strict))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.c.groups.a.gdi: unknown key 'gdi' (did you mean 'gid'?)"),
            "{e}"
        );
        let e = parse_users(&json!({"u": {"groups": "wheel"}}), "I.c.users")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.c.users.u.groups") && e.contains("\"wheel\""),
            "{e}"
        );
        let e = parse_users(&json!({"u": {"homeDir": "home"}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.u.homeDir") && e.contains("\"home\""), "{e}");
        let e = parse_users(&json!({"-rf": {}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'-rf'"), "{e}");
        let e = parse_users(&json!({"u": ["wheel"]}), "I.c.users")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "I.c.users.u: must be a mapping, got a list");
    }
}
