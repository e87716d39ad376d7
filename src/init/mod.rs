//! Step 2: the standard `AWS::CloudFormation::Init` block, with cfn-init's semantics.
//!
//! Parsing produces an [`InitPlan`] (what would run, in order) that a dry run prints and a real
//! run applies; the two never disagree because they are the same value.

mod accounts;
pub mod auth;
mod chevron;
mod commands;
#[cfg(test)]
mod containment_tests;
pub mod describe;
mod exec;
mod fetch;
pub(crate) mod file_source;
mod files;
/// `json.dumps` as Python writes it; `hup` puts it in `CFN_NEW_METADATA`.
pub(crate) use files::python_json;
pub mod mustache;
mod packages;
pub mod record;
mod resume;
mod services;
mod sources;
#[cfg(test)]
mod test_http;

use serde::Serialize;
use serde_json::{Map, Value};

pub use accounts::{GroupSpec, UserSpec};
pub use commands::{CommandLine, CommandSpec};
pub use files::FileSpec;
pub use packages::PackageSet;
pub use services::ServiceSpec;
pub use sources::SourceSpec;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::input::{Keys, Node};

pub const BLOCK: &str = "AWS::CloudFormation::Init";
/// Key paths in errors start with this.
const BLOCK_PREFIX: &str = "AWS::CloudFormation::Init.";

/// cfn-init applies a config's sections in this order, whatever order the template lists them.
const SECTIONS: &[&str] = &[
    "packages", "groups", "users", "sources", "files", "commands", "services",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InitPlan {
    /// The configSets asked for (empty when the block has none and only `config` runs).
    pub configsets: Vec<String>,
    pub configs: Vec<Config>,
    /// `AWS::CloudFormation::Authentication`, for downloads; serialises with secrets redacted.
    #[serde(skip_serializing_if = "auth::AuthConfig::is_empty")]
    pub authentication: auth::AuthConfig,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Config {
    pub name: String,
    pub sources: Vec<SourceSpec>,
    pub files: Vec<FileSpec>,
    pub commands: Vec<CommandSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageSet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
}

impl Config {
    fn is_empty(&self) -> bool {
        self.sources.is_empty()
            && self.files.is_empty()
            && self.commands.is_empty()
            && self.packages.is_empty()
            && self.groups.is_empty()
            && self.users.is_empty()
            && self.services.is_empty()
    }
}

/// What one config changed, section by section: the restart triggers of its services match
/// against it (cfn-init only restarts for changes made in the same config).
#[derive(Debug, Default)]
pub struct Changes {
    pub files: BTreeSet<String>,
    pub sources: BTreeSet<String>,
    /// Manager -> names installed.
    pub packages: BTreeMap<packages::Manager, BTreeSet<String>>,
    /// Keys of the commands that ran (a skipped `test` does not count).
    pub commands: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

impl InitPlan {
    pub fn is_empty(&self) -> bool {
        self.configs.iter().all(Config::is_empty)
    }

    pub fn files(&self) -> impl Iterator<Item = &FileSpec> {
        self.configs.iter().flat_map(|c| c.files.iter())
    }
}

/// A node for a section parser's unit test: unknown keys are warnings.
#[cfg(test)]
pub(crate) fn test_node<'a>(v: &'a Value, path: &str) -> Node<'a> {
    Node::root(v, path, Keys::Warn)
}

/// [`auth::parse`] for a unit test: unknown keys are warnings.
#[cfg(test)]
pub(crate) fn test_auth(metadata: &Value) -> Result<auth::AuthConfig> {
    auth::parse(metadata, Keys::Warn)
}

/// Reads the Init block of a resource's Metadata, unknown keys handled as `keys` says
/// (`Keys::cfn_init(strict)`: warnings as cfn-init's silence, errors with `--strict`). No block at
/// all is an empty plan: the `ecs-bootstrap:` block alone is a complete setup.
pub fn parse(metadata: &Value, requested_sets: &[String], keys: Keys) -> Result<InitPlan> {
    let Some(block) = metadata.get(BLOCK) else {
        if !requested_sets.is_empty() {
            return Err(Error::invalid(
                BLOCK,
                format!(
                    "configSets {} were asked for but the Metadata has no {BLOCK} block",
                    requested_sets.join(",")
                ),
            ));
        }
        return Ok(InitPlan {
            configsets: Vec::new(),
            configs: Vec::new(),
            authentication: auth::parse(metadata, keys)?,
        });
    };
    let init = Node::root(block, BLOCK, keys);
    let (configsets, names) = select_configs(&init, requested_sets)?;
    let configs = names
        .iter()
        .map(|name| parse_config(&init, name))
        .collect::<Result<Vec<_>>>()?;
    Ok(InitPlan {
        configsets,
        configs,
        authentication: auth::parse(metadata, keys)?,
    })
}

/// Which configs run, in order, following cfn-init: without `configSets` only `config` runs;
/// with them, the sets asked for (default: `default`) are flattened in order, nested
/// `{"ConfigSet": name}` references included.
fn select_configs(node: &Node, requested: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let init = node.mapping()?;
    let Some(sets) = node.get("configSets") else {
        if requested.is_empty() || requested == ["default"] {
            let names = if init.contains_key("config") {
                vec!["config".to_string()]
            } else {
                tracing::warn!("{BLOCK} has neither configSets nor a 'config' key: nothing to run");
                Vec::new()
            };
            return Ok((Vec::new(), names));
        }
        return Err(Error::invalid(
            format!("{BLOCK}.configSets"),
            format!(
                "configSets {} were asked for but the block defines none",
                requested.join(",")
            ),
        ));
    };
    let sets_path = sets.path().to_string();
    let sets = sets.mapping()?;
    let wanted: Vec<String> = if requested.is_empty() {
        vec!["default".to_string()]
    } else {
        requested.to_vec()
    };
    // As cfn-init (construction.py:446-540@25fabe91), every set is resolved before anything
    // runs: an undefined config or set, or a cycle, in a set not asked for is an error too.
    for set in sets.keys() {
        flatten(init, sets, set, &mut Vec::new(), &mut Vec::new())?;
    }
    let mut names = Vec::new();
    for set in &wanted {
        if !sets.contains_key(set) {
            let known: Vec<&str> = sets.keys().map(String::as_str).collect();
            return Err(Error::invalid(
                format!("{sets_path}.{set}"),
                format!(
                    "configSet '{set}' is not defined (defined: {})",
                    known.join(", ")
                ),
            ));
        }
        flatten(init, sets, set, &mut Vec::new(), &mut names)?;
    }
    Ok((wanted, names))
}

fn flatten(
    init: &Map<String, Value>,
    sets: &Map<String, Value>,
    set: &str,
    stack: &mut Vec<String>,
    out: &mut Vec<String>,
) -> Result<()> {
    let path = format!("{BLOCK}.configSets.{set}");
    if stack.iter().any(|s| s == set) {
        stack.push(set.to_string());
        return Err(Error::invalid(
            path,
            format!("configSets form a cycle: {}", stack.join(" -> ")),
        ));
    }
    let Some(value) = sets.get(set) else {
        return Err(Error::invalid(
            format!(
                "{BLOCK}.configSets.{}",
                stack.last().map(String::as_str).unwrap_or(set)
            ),
            format!("refers to configSet '{set}', which is not defined"),
        ));
    };
    stack.push(set.to_string());
    flatten_item(init, sets, value, &path, stack, out)?;
    stack.pop();
    Ok(())
}

/// One item of a configSet: a config name, `{"ConfigSet": name}`, or a list of items (nested
/// lists are flattened, as cfn-init's `_processConfigList` recursion does).
fn flatten_item(
    init: &Map<String, Value>,
    sets: &Map<String, Value>,
    value: &Value,
    path: &str,
    stack: &mut Vec<String>,
    out: &mut Vec<String>,
) -> Result<()> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let top = !matches!(value, Value::Array(_));
    for (i, item) in items.iter().enumerate() {
        let item_path = if top {
            path.to_string()
        } else {
            format!("{path}[{i}]")
        };
        match item {
            Value::Array(_) => flatten_item(init, sets, item, &item_path, stack, out)?,
            Value::String(config) => {
                if config == "configSets" || !init.contains_key(config.as_str()) {
                    return Err(Error::invalid(
                        item_path,
                        format!("refers to config '{config}', which is not defined in {BLOCK}"),
                    ));
                }
                out.push(config.clone());
            }
            // cfn-init reads only the `ConfigSet` key of such a mapping.
            Value::Object(m) if m.contains_key("ConfigSet") => match &m["ConfigSet"] {
                Value::String(nested) => flatten(init, sets, nested, stack, out)?,
                other => {
                    return Err(Error::invalid(
                        format!("{item_path}.ConfigSet"),
                        format!(
                            "must be a configSet name, got {}",
                            crate::input::kind(other)
                        ),
                    ))
                }
            },
            other => {
                return Err(Error::invalid(
                    item_path,
                    format!(
                        "must be a config name or {{\"ConfigSet\": name}}, got {}",
                        crate::input::short(other)
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn parse_config(init: &Node, name: &str) -> Result<Config> {
    let config = init.required(name)?;
    config.only_keys(SECTIONS)?;
    // cfn-init applies a section only `if self._config.<section>:` (construction.py:238-293
    // @25fabe91): a null, empty or false one (YAML `files:` with nothing under it) is absent.
    let section = |key: &str| config.get(key).filter(|n| mustache::truthy(n.value()));
    let sources = section("sources").map(|n| sources::parse(&n)).transpose()?;
    let files = section("files").map(|n| files::parse(&n)).transpose()?;
    let commands = section("commands")
        .map(|n| commands::parse(&n))
        .transpose()?;
    let packages = section("packages")
        .map(|n| packages::parse(&n))
        .transpose()?;
    let groups = section("groups")
        .map(|n| accounts::parse_groups(&n))
        .transpose()?;
    let users = section("users")
        .map(|n| accounts::parse_users(&n))
        .transpose()?;
    let services = section("services")
        .map(|n| services::parse(&n))
        .transpose()?;
    Ok(Config {
        name: name.to_string(),
        sources: sources.unwrap_or_default(),
        files: files.unwrap_or_default(),
        commands: commands.unwrap_or_default(),
        packages: packages.unwrap_or_default(),
        groups: groups.unwrap_or_default(),
        users: users.unwrap_or_default(),
        services: services.unwrap_or_default(),
    })
}

/// Applies the plan: per config, packages, groups, users, files, commands, services, as
/// cfn-init orders them.
pub async fn apply(
    plan: &InitPlan,
    root: &crate::sys::fs::Root,
    runner: &dyn crate::sys::process::Runner,
) -> Result<()> {
    let mut report = record::Report {
        configsets: plan.configsets.clone(),
        ..Default::default()
    };
    let result = apply_configs(plan, root, &mut report, runner).await;
    report.status = if result.is_ok() { "SUCCESS" } else { "FAILURE" };
    // Redacted: a failed command's error carries its output, which may print a secret.
    report.error = result
        .as_ref()
        .err()
        .map(|e| crate::sys::redact::text(&e.to_string()));
    report.finished_at_unix = record::now_unix();
    record::write(root, &report);
    result
}

async fn apply_configs(
    plan: &InitPlan,
    root: &crate::sys::fs::Root,
    report: &mut record::Report,
    runner: &dyn crate::sys::process::Runner,
) -> Result<()> {
    let fetcher = fetch::Fetcher::new(&plan.authentication)?;
    let resume = resume::take(root, plan);
    if let Some(m) = &resume {
        tracing::info!(config = %m.config, command = %m.command, "resuming Init after the reboot that command asked for");
    }
    for (i, config) in plan.configs.iter().enumerate() {
        report.configs.push(record::ConfigReport {
            name: config.name.clone(),
            ..Default::default()
        });
        let done = report.configs.last_mut().expect("just pushed");
        // Configs finished before the reboot are not run again.
        if resume.as_ref().is_some_and(|m| i < m.config_index) {
            done.completed = true;
            continue;
        }
        tracing::info!(config = %config.name, files = config.files.len(), commands = config.commands.len(), "applying Init config");
        let resume_after = resume
            .as_ref()
            .filter(|m| m.config_index == i)
            .map(|m| m.command.as_str());
        let path = format!("{BLOCK}.{}", config.name);
        let mut changes = Changes::default();
        let result = apply_config(
            config,
            &path,
            &Host {
                root,
                fetcher: &fetcher,
                runner,
            },
            &mut changes,
            &mut done.services,
            resume_after,
        )
        .await;
        done.absorb(&changes);
        if let Some(key) = result? {
            resume::save(
                root,
                &resume::Marker {
                    digest: resume::digest(plan),
                    config_index: i,
                    config: config.name.clone(),
                    command: key.clone(),
                },
            )?;
            report.status = "WAITING_FOR_REBOOT";
            report.finished_at_unix = record::now_unix();
            record::write(root, report);
            tracing::warn!(config = %config.name, command = %key, "waitAfterCompletion is 'forever': waiting for the reboot; the next run resumes after this command");
            // As cfn-init: wait for the reboot the command started, which ends this process.
            std::future::pending::<()>().await;
        }
        report.configs.last_mut().expect("pushed above").completed = true;
    }
    resume::clear(root);
    Ok(())
}

/// What applying a config works with: the files under `--root`, the downloads, the processes.
struct Host<'a> {
    root: &'a crate::sys::fs::Root,
    fetcher: &'a fetch::Fetcher<'a>,
    runner: &'a dyn crate::sys::process::Runner,
}

async fn apply_config(
    config: &Config,
    path: &str,
    host: &Host<'_>,
    changes: &mut Changes,
    service_actions: &mut BTreeMap<String, Vec<&'static str>>,
    resume_after: Option<&str>,
) -> Result<Option<String>> {
    let &Host {
        root,
        fetcher,
        runner,
    } = host;
    let name = config.name.as_str();
    packages::apply(
        &config.packages,
        name,
        fetcher,
        &mut changes.packages,
        runner,
    )
    .await?;
    accounts::apply(&config.groups, &config.users, name, path, changes, runner).await?;
    for source in &config.sources {
        // An archive unpacked again counts as a change, as in cfn-init.
        sources::apply(source, root, fetcher, name).await?;
        changes.sources.insert(source.target.clone());
    }
    for file in &config.files {
        if file_source::apply(file, root, name, fetcher).await?
            != crate::sys::fs::WriteOutcome::Unchanged
        {
            changes.files.insert(file.path.clone());
        }
    }
    for command in &config.commands {
        // Commands sort by key, so "up to the one that rebooted" is a key comparison.
        if resume_after.is_some_and(|k| command.key.as_str() <= k) {
            continue;
        }
        if commands::run(command, name, runner).await? {
            changes.commands.insert(command.key.clone());
            if command.wait_for_reboot {
                return Ok(Some(command.key.clone()));
            }
        }
    }
    services::apply(&config.services, name, changes, service_actions, runner).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(init: Value, sets: &[&str]) -> Result<Vec<String>> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        parse(&json!({ BLOCK: init }), &sets, Keys::Warn)
            .map(|p| p.configs.into_iter().map(|c| c.name).collect())
    }

    #[test]
    fn without_configsets_only_config_runs() {
        let init = json!({"config": {"commands": {}}, "other": {"commands": {}}});
        assert_eq!(names(init.clone(), &[]).unwrap(), ["config"]);
        assert!(names(init, &["x"])
            .unwrap_err()
            .to_string()
            .contains("defines none"));
        assert!(names(json!({"other": {}}), &[]).unwrap().is_empty());
        assert!(parse(&json!({}), &[], Keys::Warn).unwrap().is_empty());
    }

    #[test]
    fn configsets_flatten_in_order() {
        let init = json!({
            "configSets": {
                "default": [{"ConfigSet": "base"}, "app"],
                "base": ["a", "b"],
                "single": "b"
            },
            "a": {}, "b": {}, "app": {}
        });
        assert_eq!(names(init.clone(), &[]).unwrap(), ["a", "b", "app"]);
        assert_eq!(
            names(init.clone(), &["single", "base"]).unwrap(),
            ["b", "a", "b"]
        );
        let e = names(init, &["nope"]).unwrap_err().to_string();
        assert!(
            e.contains("configSets.nope") && e.contains("not defined"),
            "{e}"
        );
    }

    #[test]
    fn configset_errors_name_the_culprit() {
        let e = names(json!({"configSets": {"x": ["a"]}, "a": {}}), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'default'"), "{e}");
        let e = names(
            json!({"configSets": {"default": [{"ConfigSet": "b"}], "b": [{"ConfigSet": "default"}]}}),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cycle: default -> b -> default"), "{e}");
        let e = names(json!({"configSets": {"default": ["missing"]}}), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("configSets.default[0]") && e.contains("'missing'"),
            "{e}"
        );
        let e = names(
            json!({"configSets": {"default": [{"ConfigSet": "nope"}]}}),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'nope'"), "{e}");
        // Every set is checked, not only the ones asked for.
        let e = names(
            json!({"configSets": {"default": ["a"], "other": ["a", "missing"]}, "a": {}}),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("configSets.other[1]") && e.contains("'missing'"),
            "{e}"
        );
        // Nested lists flatten; a ConfigSet mapping's other keys are ignored, as in cfn-init.
        assert_eq!(
            names(
                json!({"configSets": {"default": [["a", ["b"]], {"ConfigSet": "s", "x": 1}], "s": "a"}, "a": {}, "b": {}}),
                &[]
            )
            .unwrap(),
            ["a", "b", "a"]
        );
        let e = names(json!({"configSets": {"default": [5]}, "a": {}}), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("configSets.default[0]"), "{e}");
    }

    #[test]
    fn unknown_sections_are_warnings_or_strict_errors() {
        let m = json!({ BLOCK: {"config": {"comands": {"a": {"command": "x"}}}} });
        let plan = parse(&m, &[], Keys::Warn).unwrap();
        assert!(plan.configs[0].commands.is_empty());
        let e = parse(&m, &[], Keys::Strict).unwrap_err().to_string();
        assert!(
            e.contains("config.comands")
                && e.contains("unknown key 'comands' (did you mean 'commands'?)"),
            "{e}"
        );
        // Empty sections are harmless and common in generated templates.
        assert_eq!(
            names(json!({"config": {"packages": {}, "services": {}}}), &[]).unwrap(),
            ["config"]
        );
    }
}
