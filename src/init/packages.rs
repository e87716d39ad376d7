//! Init `packages`: rpm, apt, yum, dnf, zypper, python (pip) and rubygems, applied in cfn-init's
//! order whatever order the template lists them; a package that is already installed is left
//! alone, the others of one manager are installed together.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::exec::{self, argv, Ctx};
use super::fetch::{Fetcher, Request};
use crate::error::{Error, Result};
use crate::input::Node;

/// cfn-init's order (rpm, apt, yum, zypper, python, rubygems), with dnf right after yum: cfn-init
/// has no dnf, and AL2023 has no yum unless it is installed.
pub const MANAGERS: &[&str] = &["rpm", "apt", "yum", "dnf", "zypper", "python", "rubygems"];

/// A package manager the engine drives; [`Manager::ALL`] in the order of [`MANAGERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Rpm,
    Apt,
    Yum,
    Dnf,
    Zypper,
    Python,
    Rubygems,
}

impl Manager {
    pub const ALL: [Manager; 7] = [
        Manager::Rpm,
        Manager::Apt,
        Manager::Yum,
        Manager::Dnf,
        Manager::Zypper,
        Manager::Python,
        Manager::Rubygems,
    ];

    /// Its key in the template.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Rpm => "rpm",
            Manager::Apt => "apt",
            Manager::Yum => "yum",
            Manager::Dnf => "dnf",
            Manager::Zypper => "zypper",
            Manager::Python => "python",
            Manager::Rubygems => "rubygems",
        }
    }

    /// yum, dnf and zypper: packages of the rpm database, installed by name and version.
    pub fn rpm_family(self) -> bool {
        matches!(self, Manager::Yum | Manager::Dnf | Manager::Zypper)
    }
}

impl std::fmt::Display for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackageSet {
    pub manager: Manager,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Package {
    pub name: String,
    /// `None`: any version. One entry per version when a list of versions is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// rpm only: the URL or path of the package file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `^https?://.*$` on the lowered string, as cfn-init's `PythonTool._url_pattern`.
fn is_http_url(v: &str) -> bool {
    let v = v.to_ascii_lowercase();
    v.starts_with("http://") || v.starts_with("https://")
}

impl Package {
    /// How the manager spells "this name at this version" on its command line.
    pub fn spec(&self, manager: Manager) -> String {
        match (&self.version, manager) {
            (None, _) => self.name.clone(),
            (Some(v), Manager::Apt) => format!("{}={v}", self.name),
            // A URL as a python "version" is what to install (lang_package_tools.py:71-77
            // @25fabe91).
            (Some(v), Manager::Python) if is_http_url(v) => v.clone(),
            (Some(v), Manager::Python) => format!("{}=={v}", self.name),
            // yum, dnf and zypper (zypper_tool.py:50-51@25fabe91): NAME-VERSION.
            (Some(v), _) => format!("{}-{v}", self.name),
        }
    }
}

/// The `packages` section: the managers in cfn-init's order ([`Manager::ALL`]), each a mapping of
/// package name to version(s) (rpm: to the URL or path of its file).
pub fn parse(section: &Node) -> Result<Vec<PackageSet>> {
    // cfn-init skips an unknown manager without a word (construction.py:239-240@25fabe91).
    section.only_keys_named("package manager", MANAGERS)?;
    let mut out = Vec::new();
    for manager in Manager::ALL {
        let Some(node) = section.get(manager.name()) else {
            continue;
        };
        let mut packages = Vec::new();
        for (name, spec) in node.entries()? {
            if name.trim().is_empty() || name.starts_with('-') || name.contains(char::is_whitespace)
            {
                return Err(spec.error(format!("'{name}' is not a package name")));
            }
            if manager == Manager::Rpm {
                let sources = strings(&spec)?;
                if sources.is_empty() {
                    return Err(spec.error(
                        "an rpm package needs the URL or path of its file, got an empty value",
                    ));
                }
                packages.extend(sources.into_iter().map(|s| Package {
                    name: name.to_string(),
                    version: None,
                    source: Some(s),
                }));
                continue;
            }
            let mut versions = strings(&spec)?;
            // yum and zypper install only the newest of a list (cfn-init's RpmTool.max_version,
            // rpm_tools.py:59-66,240-246; zypper_tool.py:42-46@25fabe91).
            if manager.rpm_family() && versions.len() > 1 {
                let newest = versions
                    .iter()
                    .fold(None::<&String>, |max, v| match max {
                        Some(m) if compare_rpm_versions(m, v) >= std::cmp::Ordering::Equal => {
                            Some(m)
                        }
                        _ => Some(v),
                    })
                    .cloned();
                versions = newest.into_iter().collect();
            }
            if versions.is_empty() {
                packages.push(Package {
                    name: name.to_string(),
                    version: None,
                    source: None,
                });
            }
            packages.extend(versions.into_iter().map(|v| Package {
                name: name.to_string(),
                version: Some(v),
                source: None,
            }));
        }
        if !packages.is_empty() {
            out.push(PackageSet { manager, packages });
        }
    }
    Ok(out)
}

/// cfn-init's `RpmTool.compare_rpm_versions` (rpm_tools.py:249-295@25fabe91): VERSION then
/// RELEASE (split at the first `-`), each as runs of letters or digits; digits compare as
/// numbers and beat letters, letters compare as strings, and with equal common runs the one
/// with more runs is newer.
fn compare_rpm_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn runs(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = None;
        let mut digit = false;
        for (i, c) in s.char_indices() {
            let class = if c.is_ascii_digit() {
                Some(true)
            } else if c.is_ascii_alphabetic() {
                Some(false)
            } else {
                None
            };
            match (start, class) {
                (Some(st), Some(d)) if d == digit => {
                    let _ = st;
                }
                (Some(st), _) => {
                    out.push(&s[st..i]);
                    start = class.map(|d| {
                        digit = d;
                        i
                    });
                }
                (None, Some(d)) => {
                    digit = d;
                    start = Some(i);
                }
                (None, None) => {}
            }
        }
        if let Some(st) = start {
            out.push(&s[st..]);
        }
        out
    }
    let fa: Vec<&str> = a.splitn(2, '-').collect();
    let fb: Vec<&str> = b.splitn(2, '-').collect();
    for i in 0..2 {
        let ra = fa.get(i).map(|s| runs(s)).unwrap_or_default();
        let rb = fb.get(i).map(|s| runs(s)).unwrap_or_default();
        for (x, y) in ra.iter().zip(rb.iter()) {
            let xd = x.starts_with(|c: char| c.is_ascii_digit());
            let yd = y.starts_with(|c: char| c.is_ascii_digit());
            let o = match (xd, yd) {
                (true, true) => {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        if ra.len() != rb.len() {
            return ra.len().cmp(&rb.len());
        }
    }
    Ordering::Equal
}

/// A version (or rpm location) as a string, a number (YAML `1.2`) or a list of them; "" and []
/// mean "any version".
fn strings(node: &Node) -> Result<Vec<String>> {
    let one = |x: &Node| -> Result<Option<String>> {
        match x.value() {
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) if s.contains(char::is_whitespace) => {
                Err(x.error(format!("'{s}' is not a version (no spaces)")))
            }
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) => Ok(Some(n.to_string())),
            _ => Err(x.error(format!(
                "must be a version string or a list of them, got {}",
                x.short()
            ))),
        }
    };
    match node.value() {
        Value::Array(_) => Ok(node
            .list()?
            .iter()
            .map(one)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect()),
        _ => Ok(one(node)?.into_iter().collect()),
    }
}

/// An rpm file is spooled to disk before `rpm -U`; this bounds it.
const MAX_RPM_BYTES: u64 = 2 << 30;

/// An rpm downloaded by the engine: removed (with its private directory) when dropped.
struct LocalRpm {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

/// cfn-init hands an rpm's URL to `rpm -U`, which can send no credentials and knows no s3://.
/// An `s3://` location, or a URL an Authentication entry covers (by bucket or `uris` prefix),
/// is therefore downloaded here, with those credentials, into a private (0700) temporary
/// directory, and `rpm -U` gets the file. Any other location is passed on as it is.
async fn download_rpm(
    p: &Package,
    source: &str,
    config: &str,
    fetcher: &Fetcher<'_>,
) -> Result<Option<LocalRpm>> {
    let with = fetcher.credentials_for(source);
    if !downloads_first(source, with) {
        return Ok(None);
    }
    let key_path = format!("{}{config}.packages.rpm.{}", super::BLOCK_PREFIX, p.name);
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("ecs-bootstrap-rpm-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| Error::io("create", "temporary directory", e))?;
    let path = dir.path().join(rpm_file_name(source, &p.name));
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?
    };
    let bytes = fetcher
        .fetch_into(
            &Request {
                url: source,
                auth_name: None,
                key_path: &key_path,
                max_bytes: MAX_RPM_BYTES,
            },
            &mut file,
        )
        .await?;
    tracing::info!(config, package = %p.name, url = source, authentication = with.unwrap_or("-"), bytes, "downloaded the rpm for rpm -U");
    Ok(Some(LocalRpm { _dir: dir, path }))
}

/// Whether the engine downloads the rpm at `source` itself (see [`download_rpm`]), given the
/// Authentication entry that covers it, if any.
pub fn downloads_first(source: &str, auth: Option<&str>) -> bool {
    let is_url = ["http://", "https://"]
        .iter()
        .any(|s| source.starts_with(s));
    source.starts_with("s3://") || (is_url && auth.is_some())
}

/// The URL's last path segment when it is a plain file name (rpm does not need it, but it
/// shows in logs and `ps`), else `<package>.rpm`.
fn rpm_file_name(url: &str, package: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let plain = !last.is_empty()
        && !last.starts_with('.')
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
    if plain {
        last.to_string()
    } else {
        format!("{package}.rpm")
    }
}

/// A command line that installs packages: `argv` followed by the package specs (or rpm files),
/// run with `env` added. What [`apply`] executes and what the dry run prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub argv: Vec<String>,
    pub env: &'static [(&'static str, &'static str)],
}

impl Install {
    /// As a shell would spell it: `K=V ... ARGV...`.
    pub fn line(&self) -> String {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(self.argv.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How `manager` installs (python and rubygems: one package per call, gem's version as `-v V`).
pub fn install(manager: Manager) -> Install {
    let (argv, env): (Vec<String>, &'static [(&str, &str)]) = match manager {
        Manager::Yum | Manager::Dnf => (argv([manager.name(), "-y", "install"]), &[]),
        Manager::Zypper => (argv(["zypper", "--non-interactive", "install"]), &[]),
        Manager::Apt => (
            argv(["apt-get", "-q", "-y", "install"]),
            &[("DEBIAN_FRONTEND", "noninteractive")],
        ),
        // As cfn-init runs it (rpm_tools.py:296-311@25fabe91).
        Manager::Rpm => (
            argv(["rpm", "-U", "--quiet", "--nosignature", "--replacepkgs"]),
            &[],
        ),
        Manager::Python => (argv(["pip3", "install"]), &[]),
        Manager::Rubygems => (argv(["gem", "install"]), &[]),
    };
    Install { argv, env }
}

/// How yum, dnf and zypper install a version older than the installed one; `None` for the
/// managers that have no such step.
pub fn downgrade(manager: Manager) -> Option<Install> {
    let argv = match manager {
        Manager::Zypper => argv([
            "zypper",
            "--non-interactive",
            "install",
            "--oldpackage",
            "--force-resolution",
        ]),
        Manager::Yum | Manager::Dnf => argv([manager.name(), "-y", "downgrade"]),
        Manager::Rpm | Manager::Apt | Manager::Python | Manager::Rubygems => return None,
    };
    Some(Install { argv, env: &[] })
}

/// Installs what is missing. Returns, per manager, the names it installed (for restart triggers).
pub async fn apply(
    sets: &[PackageSet],
    config: &str,
    fetcher: &Fetcher<'_>,
    changed: &mut BTreeMap<Manager, BTreeSet<String>>,
    runner: &dyn crate::sys::process::Runner,
) -> Result<()> {
    let ctx = Ctx {
        config,
        section: "packages",
        runner,
    };
    for set in sets {
        let m = set.manager;
        let missing = match m {
            Manager::Rpm => {
                apply_rpm(ctx, &set.packages, fetcher, changed).await?;
                continue;
            }
            Manager::Yum | Manager::Dnf | Manager::Zypper => {
                let missing = missing(ctx, m, &set.packages).await?;
                // As cfn-init (rpm_tools.py:78-115, zypper_tool.py:63-110@25fabe91): a requested
                // version that is not newer than the installed one is a downgrade; the rest one
                // install.
                let (mut install, mut downgrade) = (Vec::new(), Vec::new());
                for p in &missing {
                    match &p.version {
                        Some(v) => {
                            let current = installed_rpm_version(ctx, &p.name).await?;
                            if compare_rpm_versions(v, &current) == std::cmp::Ordering::Greater {
                                install.push(p.spec(m));
                            } else {
                                tracing::info!(config, package = %p.name, installed = %current, requested = %v, "downgrading");
                                downgrade.push(p.spec(m));
                            }
                        }
                        None => install.push(p.spec(m)),
                    }
                }
                for (how, list) in [
                    (Some(self::install(m)), install),
                    (self::downgrade(m), downgrade),
                ] {
                    if let Some(how) = how.filter(|_| !list.is_empty()) {
                        let mut a = how.argv;
                        a.extend(list);
                        exec::must(ctx, &a, how.env, exec::INSTALL).await?;
                    }
                }
                missing
            }
            Manager::Apt => {
                let missing = missing(ctx, m, &set.packages).await?;
                if !missing.is_empty() {
                    let how = install(m);
                    let mut a = how.argv;
                    a.extend(missing.iter().map(|p| p.spec(m)));
                    exec::must(ctx, &a, how.env, exec::INSTALL).await?;
                }
                missing
            }
            Manager::Python => {
                let missing = missing(ctx, m, &set.packages).await?;
                for p in &missing {
                    let how = install(m);
                    let mut a = how.argv;
                    a.push(p.spec(m));
                    exec::must(ctx, &a, how.env, exec::INSTALL).await?;
                }
                missing
            }
            Manager::Rubygems => {
                let missing = missing(ctx, m, &set.packages).await?;
                for p in &missing {
                    let how = install(m);
                    let mut a = how.argv;
                    a.push(p.name.clone());
                    if let Some(v) = &p.version {
                        a.extend(argv(["-v", v]));
                    }
                    exec::must(ctx, &a, how.env, exec::INSTALL).await?;
                }
                missing
            }
        };
        if missing.is_empty() {
            continue;
        }
        changed
            .entry(m)
            .or_default()
            .extend(missing.iter().map(|p| p.name.clone()));
    }
    Ok(())
}

/// The packages of `packages` that are not installed, in order.
async fn missing<'p>(
    ctx: Ctx<'_>,
    m: Manager,
    packages: &'p [Package],
) -> Result<Vec<&'p Package>> {
    let mut missing = Vec::new();
    for p in packages {
        if installed(ctx, m, p).await? {
            tracing::info!(config = ctx.config, manager = %m, package = %p.spec(m), "already installed");
        } else {
            missing.push(p);
        }
    }
    Ok(missing)
}

/// `rpm` packages as cfn-init's RpmTool (rpm_tools.py:147-206,296-311@25fabe91): the name and
/// version inside each file (`rpm -qp`) say whether it is installed (`rpm -q --quiet
/// NAME-VERSION-RELEASE`), so a file of another version than the installed one is installed
/// (upgraded); the others go in one `rpm -U --quiet --nosignature --replacepkgs`. Unlike cfn-init,
/// a file `rpm -qp` cannot read is not silently taken as installed: the package is then judged
/// by its key (`rpm -q KEY`) and a bad location fails in `rpm -U`.
async fn apply_rpm(
    ctx: Ctx<'_>,
    packages: &[Package],
    fetcher: &Fetcher<'_>,
    changed: &mut BTreeMap<Manager, BTreeSet<String>>,
) -> Result<()> {
    let config = ctx.config;
    let mut files = Vec::new();
    let mut names = Vec::new();
    // Downloaded files live until the install is done.
    let mut locals = Vec::new();
    for p in packages {
        let source = p.source.as_deref().unwrap_or_default();
        let local = download_rpm(p, source, config, fetcher).await?;
        let file = match &local {
            Some(l) => l.path.to_string_lossy().into_owned(),
            None => source.to_string(),
        };
        let present = match rpm_file_spec(ctx, &file).await? {
            Some(spec) => exec::call(
                ctx,
                &argv(["rpm", "-q", "--quiet", &spec]),
                &[],
                exec::QUERY,
            )
            .await?
            .success(),
            None => installed(ctx, Manager::Rpm, p).await?,
        };
        if present {
            tracing::info!(config, manager = "rpm", package = %p.name, "already installed");
            continue;
        }
        files.push(file);
        names.push(p.name.clone());
        locals.extend(local);
    }
    if files.is_empty() {
        return Ok(());
    }
    exec::must(
        ctx,
        &rpm_install_argv(&files),
        install(Manager::Rpm).env,
        exec::INSTALL,
    )
    .await?;
    drop(locals);
    changed.entry(Manager::Rpm).or_default().extend(names);
    Ok(())
}

/// `NAME-VERSION-RELEASE` of the rpm file at `file` (a path or URL rpm reads itself), as
/// cfn-init's `get_package_version(pkg)` asks it; `None` when rpm cannot read it.
async fn rpm_file_spec(ctx: Ctx<'_>, file: &str) -> Result<Option<String>> {
    let mut query = argv([
        "rpm",
        "-qp",
        "--queryformat",
        "%{NAME}|%{VERSION}-%{RELEASE}",
        "--nosignature",
    ]);
    // A file named like an option would be read as one (the source is the template's text).
    if file.starts_with('-') {
        query.push("--".into());
    }
    query.push(file.into());
    let a = exec::call(ctx, &query, &[], exec::QUERY).await?;
    if !a.success() {
        return Ok(None);
    }
    let (name, version) = a
        .stdout
        .trim()
        .split_once('|')
        .unwrap_or((a.stdout.trim(), ""));
    Ok(match (name, version) {
        ("", _) => None,
        (n, "") => Some(n.to_string()),
        (n, v) => Some(format!("{n}-{v}")),
    })
}

/// The installed `VERSION-RELEASE` of an rpm package ("" when none), as cfn-init's
/// `RpmTool.get_package_version(name, False)` asks it (rpm_tools.py:207-233@25fabe91).
async fn installed_rpm_version(ctx: Ctx<'_>, name: &str) -> Result<String> {
    let a = exec::call(
        ctx,
        &argv([
            "rpm",
            "-qa",
            "--queryformat",
            "%{NAME}|%{VERSION}-%{RELEASE}",
            "--nosignature",
            name,
        ]),
        &[],
        exec::QUERY,
    )
    .await?;
    if !a.success() {
        return Ok(String::new());
    }
    Ok(a.stdout
        .trim()
        .split_once('|')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default())
}

/// `rpm -U --quiet --nosignature --replacepkgs FILE...`, as cfn-init runs it; with `--` before
/// the files when one starts with `-`, which rpm would otherwise read as an option (the
/// source is the template's text).
fn rpm_install_argv(files: &[String]) -> Vec<String> {
    let mut a = install(Manager::Rpm).argv;
    if files.iter().any(|f| f.starts_with('-')) {
        a.push("--".into());
    }
    a.extend(files.iter().cloned());
    a
}

async fn installed(ctx: Ctx<'_>, manager: Manager, p: &Package) -> Result<bool> {
    Ok(match manager {
        Manager::Yum | Manager::Dnf | Manager::Zypper => exec::call(
            ctx,
            &argv(["rpm", "-q", &p.spec(Manager::Yum)]),
            &[],
            exec::QUERY,
        )
        .await?
        .success(),
        // An rpm entry is named by its key: the file at `source` is that package.
        Manager::Rpm => exec::call(ctx, &argv(["rpm", "-q", &p.name]), &[], exec::QUERY)
            .await?
            .success(),
        // As cfn-init's AptTool._pkg_installed (apt_tool.py:104-125@25fabe91): installed, and
        // `name=version` starts with the requested spec (any version when none is asked for).
        Manager::Apt => {
            let a = exec::call(
                ctx,
                &argv([
                    "dpkg-query",
                    "-f",
                    "${Status}|${Package}=${Version}",
                    "-W",
                    &p.name,
                ]),
                &[],
                exec::QUERY,
            )
            .await?;
            let (status, spec) = a.stdout.trim().split_once('|').unwrap_or(("", ""));
            a.success()
                && status.rsplit(' ').next() == Some("installed")
                && spec.starts_with(&p.spec(Manager::Apt))
        }
        Manager::Python => {
            let a = exec::call(ctx, &argv(["pip3", "show", &p.name]), &[], exec::QUERY).await?;
            // `pip3 show` prints the installed version: another version is not "installed".
            a.success()
                && p.version.as_ref().is_none_or(|v| {
                    a.stdout
                        .lines()
                        .any(|l| l.strip_prefix("Version:").map(str::trim) == Some(v.as_str()))
                })
        }
        Manager::Rubygems => {
            let mut a = argv(["gem", "list", "-i", &p.name]);
            if let Some(v) = &p.version {
                a.extend(argv(["-v", v]));
            }
            exec::call(ctx, &a, &[], exec::QUERY).await?.success()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Keys;
    use serde_json::json;

    fn parse(v: &Value, path: &str) -> Result<Vec<PackageSet>> {
        super::parse(&Node::root(v, path, Keys::Warn))
    }

    #[test]
    fn an_rpm_source_that_looks_like_an_option_is_not_one() {
        let rpm = ["rpm", "-U", "--quiet", "--nosignature", "--replacepkgs"];
        assert_eq!(
            rpm_install_argv(&["--define=x y".into()]),
            [&rpm[..], &["--", "--define=x y"]].concat()
        );
        assert_eq!(
            rpm_install_argv(&["http://h/a.rpm".into()]),
            [&rpm[..], &["http://h/a.rpm"]].concat()
        );
    }

    #[test]
    fn the_enum_names_every_manager_in_order() {
        let names: Vec<&str> = Manager::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, MANAGERS);
        assert_eq!(
            serde_json::to_value(Manager::Rubygems).unwrap(),
            json!("rubygems")
        );
        let lines: Vec<String> = Manager::ALL.iter().map(|m| install(*m).line()).collect();
        assert_eq!(
            lines,
            [
                "rpm -U --quiet --nosignature --replacepkgs",
                "DEBIAN_FRONTEND=noninteractive apt-get -q -y install",
                "yum -y install",
                "dnf -y install",
                "zypper --non-interactive install",
                "pip3 install",
                "gem install",
            ]
        );
        let down: Vec<Option<String>> = Manager::ALL
            .iter()
            .map(|m| downgrade(*m).map(|i| i.line()))
            .collect();
        assert_eq!(
            down,
            [
                None,
                None,
                Some("yum -y downgrade".into()),
                Some("dnf -y downgrade".into()),
                Some("zypper --non-interactive install --oldpackage --force-resolution".into()),
                None,
                None,
            ]
        );
    }

    #[test]
    fn managers_in_cfn_init_order_and_versions() {
        let sets = parse(
            &json!({
                "rubygems": {"chef": ["0.10.2"]},
                "yum": {"httpd": [], "php": "", "mysql": ["5.1", "5.5"]},
                "rpm": {"epel": "http://example.com/epel.rpm"},
                "dnf": {"jq": 1.6},
                "python": {"boto3": "1.0"},
                "apt": {"curl": "7.1"}
            }),
            "I.c.packages",
        )
        .unwrap();
        let order: Vec<&str> = sets.iter().map(|s| s.manager.name()).collect();
        assert_eq!(order, ["rpm", "apt", "yum", "dnf", "python", "rubygems"]);
        let yum: Vec<String> = sets[2]
            .packages
            .iter()
            .map(|p| p.spec(Manager::Yum))
            .collect();
        // yum installs only the newest of a list, as cfn-init.
        assert_eq!(yum, ["httpd", "php", "mysql-5.5"]);
        assert_eq!(sets[1].packages[0].spec(Manager::Apt), "curl=7.1");
        assert_eq!(sets[3].packages[0].spec(Manager::Dnf), "jq-1.6");
        assert_eq!(sets[4].packages[0].spec(Manager::Python), "boto3==1.0");
        assert_eq!(
            sets[0].packages[0].source.as_deref(),
            Some("http://example.com/epel.rpm")
        );
    }

    #[test]
    fn rpm_download_decision() {
        assert!(downloads_first("s3://b/x.rpm", None));
        assert!(downloads_first("https://h/x.rpm", Some("Web")));
        assert!(!downloads_first("https://h/x.rpm", None));
        assert!(!downloads_first("/tmp/x.rpm", Some("Web")));
    }

    #[test]
    fn rpm_file_names() {
        assert_eq!(
            rpm_file_name("https://h/p/epel-release-7.noarch.rpm?sig=1", "epel"),
            "epel-release-7.noarch.rpm"
        );
        assert_eq!(rpm_file_name("https://h/download?id=3", "epel"), "download");
        assert_eq!(rpm_file_name("https://h/", "epel"), "epel.rpm");
        assert_eq!(rpm_file_name("s3://b/..", "epel"), "epel.rpm");
        assert_eq!(rpm_file_name("https://h/a%2Fb.rpm", "epel"), "epel.rpm");
    }

    #[test]
    fn rpm_version_order_and_yum_takes_the_newest() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("1.10", "1.9", Greater),
            ("1.2-3", "1.2-10", Less),
            ("1.0", "1.0.1", Less),
            ("1.0a", "1.0", Greater),
            ("2", "a", Greater),
            ("1.01", "1.1", Equal),
            ("1_0", "1.0", Equal),
        ] {
            assert_eq!(compare_rpm_versions(a, b), want, "{a} vs {b}");
        }
        let p = parse(
            &json!({"yum": {"app": ["1.2-3", "1.10-1", "1.9"]}, "apt": {"x": ["1", "2"]}}),
            "p",
        )
        .unwrap();
        let specs: Vec<(String, Option<String>)> = p
            .iter()
            .flat_map(|s| {
                s.packages
                    .iter()
                    .map(|p| (p.name.clone(), p.version.clone()))
            })
            .collect();
        assert_eq!(
            specs,
            [
                ("x".into(), Some("1".into())),
                ("x".into(), Some("2".into())),
                ("app".into(), Some("1.10-1".into()))
            ]
        );
    }

    #[test]
    fn errors_name_the_key_and_value() {
        assert!(parse(&json!({"brew": {"jq": []}}), "I.c.packages")
            .unwrap()
            .is_empty());
        let e = super::parse(&Node::root(
            &json!({"brew": {"jq": []}}),
            "I.c.packages",
            Keys::Strict,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("I.c.packages.brew") && e.contains("unknown package manager 'brew'"),
            "{e}"
        );
        let e = parse(&json!({"yum": {"jq": {"v": 1}}}), "I.c.packages")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.c.packages.yum.jq") && e.contains(r#"{"v":1}"#),
            "{e}"
        );
        let e = parse(&json!({"yum": ["jq"]}), "I.c.packages")
            .unwrap_err()
            .to_string();
        assert!(e.contains("I.c.packages.yum: must be a mapping"), "{e}");
        let e = parse(&json!({"rpm": {"x": ""}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.rpm.x") && e.contains("URL or path"), "{e}");
        let e = parse(&json!({"yum": {"jq": [true]}}), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.yum.jq[0]") && e.contains("true"), "{e}");
    }
}
