//! cfn-hup's configuration directory (`-c/--config`, default `/etc/cfn`): `cfn-hup.conf`'s
//! `[main]` and the hooks of `hooks.conf` plus every regular file in `hooks.d/`, read and
//! checked in the order and with the messages of `update_hooks.parse_config`
//! (update_hooks.py:41-162@25fabe91) and bin/cfn-hup (bin/cfn-hup:34-42, 68-100@25fabe91).
//!
//! Deliberately different (docs/hup.md): `hooks.d/` is read in file-name order (Python's
//! `os.listdir` order is the directory's, i.e. unspecified); an unreadable file is a warning
//! (Python skips it silently), an unreadable `cfn-hup.conf` an error naming it (Python reports
//! "[main] section must contain stack option"); `on.command` hooks (cfn-hup's SQS command
//! channel) are recognised and skipped with a warning, and a configuration with no other hook is
//! an error; integers take ASCII digits only (Python's `int()` also takes other scripts' digits).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ini::{py_strip, Ini, IniError, MAX_FILE_BYTES};
use super::rules::{HookPath, PathError};

pub const DEFAULT_CONFIG_DIR: &str = "/etc/cfn";
pub const MAIN_CONF: &str = "cfn-hup.conf";
pub const HOOKS_CONF: &str = "hooks.conf";
pub const HOOKS_DIR: &str = "hooks.d";
/// update_hooks.py:126.
pub const DEFAULT_REGION: &str = "us-east-1";
/// bin/cfn-hup:94.
pub const DEFAULT_INTERVAL_MINUTES: u64 = 15;
/// bin/cfn-hup:211 ("mask out world and group writable").
pub const DEFAULT_UMASK: u32 = 0o022;
/// Ours: bounds on `hooks.d/` (a directory of a million files must not take the daemon down).
pub const MAX_HOOK_FILES: usize = 1000;
pub const MAX_HOOK_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// bin/cfn-hup:74-77.
    #[error("Could not find configuration at {0}")]
    NoConfigDir(PathBuf),
    /// update_hooks.py:43-45.
    #[error("Could not find main configuration at {0}")]
    NoMainConf(PathBuf),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Ini(#[from] IniError),
    /// update_hooks.py:50-51.
    #[error("{0}: [main] section must contain stack option")]
    NoStack(PathBuf),
    /// update_hooks.py:80-82.
    #[error("No hook configurations found at {0} or {1}.")]
    NoHookFiles(PathBuf, PathBuf),
    /// update_hooks.py:123-124; with our reason when only `on.command` hooks were found.
    #[error("No valid hooks found{}", if *.only_commands { " (on.command hooks are not supported by ecs-bootstrap hup)" } else { "" })]
    NoValidHooks { only_commands: bool },
    /// A `path` cfn-hup would stop on (`FatalUpdateError`, update_hooks.py:699-715): refused
    /// when the configuration is loaded, not when the hook is first processed.
    #[error("{at}: hook {hook}: {source}")]
    Path {
        at: String,
        hook: String,
        source: PathError,
    },
    #[error("{dir}: more than {MAX_HOOK_FILES} files or {MAX_HOOK_BYTES} bytes of hooks")]
    TooManyHookFiles { dir: PathBuf },
    /// bin/cfn-hup:95-100: `getint`, then the `< 1` check.
    #[error("{at}: Invalid interval (must be 1 minute or greater): {value}")]
    Interval { at: String, value: String },
    /// bin/cfn-hup:34-42.
    #[error("{at}: Invalid octal value specified for umask in config file: {value:?}")]
    Umask { at: String, value: String },
    /// `getboolean` (bin/cfn-hup:189-190).
    #[error("{at}: verbose: Not a boolean: {value}")]
    Verbose { at: String, value: String },
}

/// Where the AWS credentials come from (update_hooks.py:55-66): `role` wins over
/// `credential-file`; neither means the default chain (cfn-hup: empty keys, so the instance's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Role(String),
    /// The file still has to be read (`AWSAccessKeyId=`/`AWSSecretKey=` lines, mode 0600;
    /// util.py:467-494); cfn-hup reads it while parsing and fails with "Could not retrieve
    /// credentials from file".
    File(String),
    Default,
}

/// `cfn-hup.conf`'s `[main]`. What only the daemon reads (interval, umask) and what depends on
/// the command line (verbose) are methods, so that `--no-daemon` is not failed by them, as in
/// cfn-hup.
#[derive(Debug)]
pub struct Main {
    ini: Ini,
    pub stack: String,
    pub region: String,
    /// `url`: the CloudFormation endpoint (update_hooks.py:130-133).
    pub url: Option<String>,
    pub credentials: CredentialSource,
    /// `multi-threaded` (update_hooks.py:137-141): only cfn-hup's command hooks use it.
    pub multi_threaded: bool,
}

const MAIN: &str = "main";

impl Main {
    fn at(&self, option: &str) -> String {
        self.ini.origin(MAIN, option).unwrap_or_default()
    }

    /// `interval` in minutes, default 15, at least 1: daemon mode only (bin/cfn-hup:94-100).
    pub fn interval_minutes(&self) -> Result<u64, ConfError> {
        if !self.ini.has_option(MAIN, "interval") {
            return Ok(DEFAULT_INTERVAL_MINUTES);
        }
        let value = self.ini.get(MAIN, "interval")?;
        match python_int(&value, 10) {
            Some(n) if n >= 1 => Ok(n as u64),
            _ => Err(ConfError::Interval {
                at: self.at("interval"),
                value,
            }),
        }
    }

    /// `umask`, read as octal even without a leading 0, at most 0777; default 022: daemon mode
    /// only (bin/cfn-hup:34-42, 210-221).
    pub fn umask(&self) -> Result<u32, ConfError> {
        if !self.ini.has_option(MAIN, "umask") {
            return Ok(DEFAULT_UMASK);
        }
        let value = self.ini.get(MAIN, "umask")?;
        match python_int(&format!("0{value}"), 8) {
            Some(n) if (0..=0o777).contains(&n) => Ok(n as u32),
            _ => Err(ConfError::Umask {
                at: self.at("umask"),
                value,
            }),
        }
    }

    /// `-v` or `verbose` (bin/cfn-hup:189-190): with `-v` the option is not read at all.
    pub fn verbose(&self, cli_verbose: bool) -> Result<bool, ConfError> {
        if cli_verbose || !self.ini.has_option(MAIN, "verbose") {
            return Ok(cli_verbose);
        }
        let value = self.ini.get(MAIN, "verbose")?;
        // `RawConfigParser.BOOLEAN_STATES`; `getboolean` lowercases but does not strip.
        match value.to_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Ok(true),
            "0" | "no" | "false" | "off" => Ok(false),
            _ => Err(ConfError::Verbose {
                at: self.at("verbose"),
                value,
            }),
        }
    }
}

/// One hook section (update_hooks.py:87-121).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The section name.
    pub name: String,
    /// `triggers` split on `,`, each stripped (update_hooks.py:92-93); unknown ones never fire.
    pub triggers: Vec<String>,
    /// Stripped (update_hooks.py:109); also the second half of the state key.
    pub path: String,
    /// `path` parsed.
    pub target: HookPath,
    /// As read (update_hooks.py:110); run by `/bin/sh -c` (util.py:591-597 `shell=True`).
    pub action: String,
    /// Stripped; an empty one is none (update_hooks.py:103-105 and `if hook.runas`, 666).
    pub runas: Option<String>,
    /// `file:line` of its `path`, for messages.
    pub origin: String,
}

/// Why a section is not a hook we run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// update_hooks.py:88-90, 95-101: cfn-hup logs "No triggers specified for hook %s" etc.
    NoTriggers,
    NoPath,
    NoAction,
    /// `triggers = on.command` exactly (update_hooks.py:214-215): cfn-hup's SQS command hooks.
    OnCommand,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: SkipReason,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = &self.name;
        match self.reason {
            SkipReason::NoTriggers => write!(f, "No triggers specified for hook {n}"),
            SkipReason::NoPath => write!(f, "No path specified for hook {n}"),
            SkipReason::NoAction => write!(f, "No action specified for hook {n}"),
            SkipReason::OnCommand => write!(
                f,
                "hook {n}: on.command hooks (cfn-hup's SQS command channel) are not supported; skipped"
            ),
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub main: Main,
    /// In section order: `hooks.conf`'s first, then each `hooks.d/` file's new ones.
    pub hooks: Vec<Hook>,
    /// Sections that are not hooks we run: to be logged as errors/warnings, as cfn-hup does.
    pub skipped: Vec<Skipped>,
    /// Files read, in order (hooks.conf first if present).
    pub hook_files: Vec<PathBuf>,
    /// Files that exist but could not be opened (Python skips them silently).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Reads the configuration directory `dir` as `parse_config_file` + `parse_config` do.
pub fn load(dir: &Path) -> Result<Config, ConfError> {
    if !dir.is_dir() {
        return Err(ConfError::NoConfigDir(dir.to_path_buf()));
    }
    let main_path = dir.join(MAIN_CONF);
    if !main_path.is_file() {
        return Err(ConfError::NoMainConf(main_path));
    }
    let mut ini = Ini::new();
    let bytes = read_bounded(&main_path).map_err(|e| ConfError::Io {
        path: main_path.clone(),
        message: e.to_string(),
    })?;
    ini.read(&main_path.display().to_string(), &bytes)?;
    if !ini.has_option(MAIN, "stack") {
        return Err(ConfError::NoStack(main_path));
    }
    let stack = ini.get(MAIN, "stack")?;
    let credentials = if ini.has_option(MAIN, "role") {
        CredentialSource::Role(ini.get(MAIN, "role")?)
    } else if ini.has_option(MAIN, "credential-file") {
        CredentialSource::File(ini.get(MAIN, "credential-file")?)
    } else {
        CredentialSource::Default
    };

    let hooks_conf = dir.join(HOOKS_CONF);
    let hooks_dir = dir.join(HOOKS_DIR);
    let mut candidates = vec![hooks_conf.clone()];
    if hooks_dir.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&hooks_dir)
            .map_err(|e| ConfError::Io {
                path: hooks_dir.clone(),
                message: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        if names.len() > MAX_HOOK_FILES {
            return Err(ConfError::TooManyHookFiles { dir: hooks_dir });
        }
        names.sort();
        // `os.path.isfile` follows symlinks: a link to a regular file counts.
        candidates.extend(
            names
                .into_iter()
                .map(|n| hooks_dir.join(n))
                .filter(|p| p.is_file()),
        );
    }
    let mut hooks_ini = Ini::new();
    let mut hook_files = Vec::new();
    let mut unreadable = Vec::new();
    let mut total = 0usize;
    for path in candidates {
        // `ConfigParser.read` skips a file it cannot open (configparser.py `read`: OSError).
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                unreadable.push((path, e.to_string()));
                continue;
            }
        };
        total += bytes.len();
        if total > MAX_HOOK_BYTES {
            return Err(ConfError::TooManyHookFiles { dir: hooks_dir });
        }
        hooks_ini.read(&path.display().to_string(), &bytes)?;
        hook_files.push(path);
    }
    if hook_files.is_empty() {
        return Err(ConfError::NoHookFiles(hooks_conf, hooks_dir));
    }

    let mut hooks = Vec::new();
    let mut skipped = Vec::new();
    let sections: Vec<String> = hooks_ini.sections().map(str::to_string).collect();
    for name in sections {
        let skip = |reason| Skipped {
            name: name.clone(),
            reason,
        };
        if !hooks_ini.has_option(&name, "triggers") {
            skipped.push(skip(SkipReason::NoTriggers));
            continue;
        }
        let triggers: Vec<String> = hooks_ini
            .get(&name, "triggers")?
            .split(',')
            .map(|t| py_strip(t).to_string())
            .collect();
        if !hooks_ini.has_option(&name, "path") {
            skipped.push(skip(SkipReason::NoPath));
            continue;
        }
        if !hooks_ini.has_option(&name, "action") {
            skipped.push(skip(SkipReason::NoAction));
            continue;
        }
        let runas = if hooks_ini.has_option(&name, "runas") {
            Some(py_strip(&hooks_ini.get(&name, "runas")?).to_string()).filter(|r| !r.is_empty())
        } else {
            None
        };
        let path = py_strip(&hooks_ini.get(&name, "path")?).to_string();
        let action = hooks_ini.get(&name, "action")?;
        if triggers == ["on.command"] {
            // cfn-hup reads these two for command hooks (update_hooks.py:113-118); reading them
            // keeps an interpolation error in them the error it is there.
            for opt in ["singleton", "send_result"] {
                if hooks_ini.has_option(&name, opt) {
                    hooks_ini.get(&name, opt)?;
                }
            }
            skipped.push(skip(SkipReason::OnCommand));
            continue;
        }
        let origin = hooks_ini.origin(&name, "path").unwrap_or_default();
        let target = HookPath::parse(&path).map_err(|source| ConfError::Path {
            at: origin.clone(),
            hook: name.clone(),
            source,
        })?;
        hooks.push(Hook {
            origin,
            target,
            name,
            triggers,
            path,
            action,
            runas,
        });
    }
    if hooks.is_empty() {
        return Err(ConfError::NoValidHooks {
            only_commands: skipped.iter().any(|s| s.reason == SkipReason::OnCommand),
        });
    }

    let region = if ini.has_option(MAIN, "region") {
        ini.get(MAIN, "region")?
    } else {
        DEFAULT_REGION.to_string()
    };
    let url = if ini.has_option(MAIN, "url") {
        Some(ini.get(MAIN, "url")?)
    } else {
        None
    };
    let multi_threaded = if ini.has_option(MAIN, "multi-threaded") {
        interpret_boolean(&ini.get(MAIN, "multi-threaded")?)
    } else {
        true
    };
    Ok(Config {
        main: Main {
            ini,
            stack,
            region,
            url,
            credentials,
            multi_threaded,
        },
        hooks,
        skipped,
        hook_files,
        unreadable,
    })
}

/// At most [`MAX_FILE_BYTES`] + 1 bytes: one more than allowed, so the reader reports the file
/// as too big instead of parsing a truncated one.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// `util.interpret_boolean` for a string (util.py:368-386@25fabe91): the Init block's reading
/// ([`crate::input::boolean_word`]), after Python's own `strip()`.
pub fn interpret_boolean(s: &str) -> bool {
    crate::input::boolean_word(py_strip(s)).is_true()
}

/// Python's `int(s, radix)` for radix 10 or 8: surrounding whitespace, a sign, for radix 8 an
/// optional `0o` prefix, digits with single `_` between them. ASCII digits only (see the module
/// doc); `None` where Python raises `ValueError` or the number does not fit an `i64`.
pub fn python_int(s: &str, radix: u32) -> Option<i64> {
    let s = py_strip(s);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut digits = s;
    let mut after_prefix = false;
    if radix == 8 && (s.starts_with("0o") || s.starts_with("0O")) {
        digits = &s[2..];
        after_prefix = true;
    }
    // An underscore may follow the prefix or a digit, and must precede a digit.
    let mut n: i64 = 0;
    let mut prev_digit = after_prefix;
    let mut any = false;
    let mut prev_underscore = false;
    for c in digits.chars() {
        if c == '_' {
            if !prev_digit {
                return None;
            }
            prev_digit = false;
            prev_underscore = true;
            continue;
        }
        let d = c.to_digit(radix)?;
        n = n.checked_mul(radix as i64)?.checked_add(d as i64)?;
        prev_digit = true;
        prev_underscore = false;
        any = true;
    }
    if !any || prev_underscore {
        return None;
    }
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new(main: &str) -> Dir {
            let d = Dir(tempfile::tempdir().unwrap());
            fs::write(d.0.path().join(MAIN_CONF), main).unwrap();
            d
        }
        fn file(&self, rel: &str, text: &str) -> &Self {
            let p = self.0.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
            self
        }
        fn load(&self) -> Result<Config, ConfError> {
            load(self.0.path())
        }
    }

    const HOOK: &str = "[reload]\ntriggers = post.update\npath = Resources.LC.Metadata.AWS::CloudFormation::Init\naction = /opt/aws/bin/cfn-init -v --stack s --resource LC\nrunas = root\n";

    #[test]
    fn the_classic_configuration() {
        let d = Dir::new("[main]\nstack = arn:aws:cloudformation:eu-west-1:1:stack/s/x\nregion = eu-west-1\ninterval = 5\n");
        d.file("hooks.d/cfn-auto-reloader.conf", HOOK);
        let c = d.load().unwrap();
        assert_eq!(c.main.stack, "arn:aws:cloudformation:eu-west-1:1:stack/s/x");
        assert_eq!(c.main.region, "eu-west-1");
        assert_eq!(c.main.interval_minutes().unwrap(), 5);
        assert_eq!(c.main.umask().unwrap(), 0o022);
        assert_eq!(c.main.credentials, CredentialSource::Default);
        assert!(c.main.multi_threaded);
        assert_eq!(c.hooks.len(), 1);
        let h = &c.hooks[0];
        assert_eq!(h.name, "reload");
        assert_eq!(h.triggers, ["post.update"]);
        assert_eq!(h.path, "Resources.LC.Metadata.AWS::CloudFormation::Init");
        assert_eq!(h.runas.as_deref(), Some("root"));
        assert!(
            h.origin.ends_with("hooks.d/cfn-auto-reloader.conf:3"),
            "{}",
            h.origin
        );
        assert!(c.skipped.is_empty());
    }

    #[test]
    fn defaults_region_interval_and_credentials() {
        let d = Dir::new("[main]\nstack = s\nrole = r\ncredential-file = /c\n");
        d.file("hooks.conf", HOOK);
        let c = d.load().unwrap();
        assert_eq!(c.main.region, "us-east-1");
        assert_eq!(c.main.interval_minutes().unwrap(), 15);
        assert_eq!(c.main.credentials, CredentialSource::Role("r".into()));
        let d = Dir::new("[main]\nstack = s\ncredential-file = /c\nmulti-threaded = No\n");
        d.file("hooks.conf", HOOK);
        let c = d.load().unwrap();
        assert_eq!(c.main.credentials, CredentialSource::File("/c".into()));
        assert!(!c.main.multi_threaded);
    }

    #[test]
    fn missing_directory_main_conf_and_stack() {
        let e = load(Path::new("/nonexistent/cfn")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Could not find configuration at /nonexistent/cfn"
        );
        let d = Dir(tempfile::tempdir().unwrap());
        assert!(matches!(d.load().unwrap_err(), ConfError::NoMainConf(_)));
        let d = Dir::new("[other]\nstack = s\n");
        d.file("hooks.conf", HOOK);
        assert!(d
            .load()
            .unwrap_err()
            .to_string()
            .ends_with("[main] section must contain stack option"));
        // [DEFAULT] counts: has_option('main', 'stack') sees it.
        let d = Dir::new("[DEFAULT]\nstack = s\n[main]\n");
        d.file("hooks.conf", HOOK);
        assert_eq!(d.load().unwrap().main.stack, "s");
    }

    #[test]
    fn no_hook_files_and_no_valid_hooks() {
        let d = Dir::new("[main]\nstack = s\n");
        fs::create_dir(d.0.path().join("hooks.d")).unwrap();
        let e = d.load().unwrap_err().to_string();
        assert!(e.starts_with("No hook configurations found at "), "{e}");
        assert!(
            e.contains("hooks.conf or ") && e.ends_with("hooks.d."),
            "{e}"
        );
        // A file with no usable section: read, but no valid hooks.
        d.file("hooks.d/x", "[h]\ntriggers = post.add\n");
        let e = d.load().unwrap_err();
        assert_eq!(e.to_string(), "No valid hooks found");
        d.file(
            "hooks.d/x",
            "[h]\ntriggers = on.command\npath = cmd\naction = a\n",
        );
        assert!(d
            .load()
            .unwrap_err()
            .to_string()
            .contains("on.command hooks are not supported"));
    }

    #[test]
    fn incomplete_and_command_sections_are_skipped() {
        let d = Dir::new("[main]\nstack = s\n");
        d.file(
            "hooks.conf",
            "[a]\npath = p\naction = x\n[b]\ntriggers = post.add\naction = x\n[c]\ntriggers = post.add\npath = p\n[cmd]\ntriggers = on.command\npath = name\naction = x\n[mixed]\ntriggers = on.command, post.add\npath = Resources.X\naction = x\n",
        );
        let c = d.load().unwrap();
        let reasons: Vec<_> = c
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.reason.clone()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("a", SkipReason::NoTriggers),
                ("b", SkipReason::NoPath),
                ("c", SkipReason::NoAction),
                ("cmd", SkipReason::OnCommand)
            ]
        );
        assert_eq!(c.skipped[1].to_string(), "No path specified for hook b");
        // Only exactly `on.command` is a command hook (update_hooks.py:215).
        assert_eq!(c.hooks.len(), 1);
        assert_eq!(c.hooks[0].triggers, ["on.command", "post.add"]);
    }

    #[test]
    fn hooks_d_every_regular_file_in_name_order_merged_over_hooks_conf() {
        let d = Dir::new("[main]\nstack = s\n");
        d.file(
            "hooks.conf",
            "[z]\ntriggers=post.add\npath=Resources.Z\naction=conf\n",
        )
        .file(
            "hooks.d/b.conf",
            "[z]\naction = from-b\n[b]\ntriggers=post.add\npath=Resources.B\naction=b\n",
        )
        .file(
            "hooks.d/a",
            "[z]\naction = from-a\n[a]\ntriggers=post.add\npath=Resources.A\naction=a\n",
        )
        .file(
            "hooks.d/.hidden~",
            "[h]\ntriggers=post.add\npath=Resources.H\naction=h\n",
        )
        .file(
            "hooks.d/sub/ignored",
            "[s]\ntriggers=post.add\npath=Resources.S\naction=s\n",
        );
        std::os::unix::fs::symlink(
            d.0.path().join("hooks.d/a"),
            d.0.path().join("hooks.d/0link"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nonexistent", d.0.path().join("hooks.d/broken")).unwrap();
        let c = d.load().unwrap();
        let names: Vec<_> = c.hooks.iter().map(|h| h.name.as_str()).collect();
        // `.hidden~` sorts first, then `0link` (a link to `a`), `a` again (same sections in two
        // files are fine), `b.conf`; the directory and the broken link are not regular files.
        assert_eq!(names, ["z", "h", "a", "b"]);
        let z = &c.hooks[0];
        assert_eq!(z.action, "from-b", "b.conf is read after a");
        assert_eq!(c.hook_files.len(), 5);
    }

    #[test]
    fn a_bad_hook_file_fails_the_whole_configuration() {
        let d = Dir::new("[main]\nstack = s\n");
        d.file("hooks.conf", HOOK)
            .file("hooks.d/x", "[h]\ntriggers=a\ntriggers=b\n");
        let e = d.load().unwrap_err().to_string();
        assert!(e.contains("hooks.d/x:3: option 'triggers'"), "{e}");
        // Interpolation errors count only in the options cfn-hup reads.
        d.file("hooks.d/x", "[h]\nunused = 100%\n");
        d.load().unwrap();
        d.file(
            "hooks.d/x",
            "[h]\ntriggers = post.add\npath = %(nope)s\naction = a\n",
        );
        assert!(matches!(
            d.load().unwrap_err(),
            ConfError::Ini(IniError::InterpolationMissingOption { .. })
        ));
    }

    #[test]
    fn a_path_cfn_hup_would_stop_on_is_refused_at_load() {
        let d = Dir::new("[main]\nstack = s\n");
        d.file(
            "hooks.conf",
            "[h]\ntriggers = post.add\npath = Resources.X.Properties\naction = a\n",
        );
        let e = d.load().unwrap_err().to_string();
        assert!(
            e.contains("hooks.conf:3: hook h: Unsupported path: only Metadata"),
            "{e}"
        );
        d.file(
            "hooks.conf",
            "[h]\ntriggers = post.add\npath = Resources.X\naction = a\n",
        );
        assert_eq!(d.load().unwrap().hooks[0].target.logical_id, "X");
    }

    #[test]
    fn hooks_inherit_default_and_interpolate() {
        let d = Dir::new("[main]\nstack = s\n");
        d.file(
            "hooks.conf",
            "[DEFAULT]\nbin = /opt/aws/bin\nrunas = \ntriggers = post.add , post.update,\n[h]\npath =  Resources.LC.Metadata \naction = %(bin)s/cfn-init --url 'x?a=1%%20'\n",
        );
        let c = d.load().unwrap();
        let h = &c.hooks[0];
        assert_eq!(h.triggers, ["post.add", "post.update", ""]);
        assert_eq!(h.path, "Resources.LC.Metadata");
        assert_eq!(h.action, "/opt/aws/bin/cfn-init --url 'x?a=1%20'");
        assert_eq!(h.runas, None, "an empty runas is no runas");
    }

    #[test]
    fn interval_umask_verbose_as_cfn_hup_reads_them() {
        let main = |extra: &str| {
            let d = Dir::new(&format!("[main]\nstack = s\n{extra}"));
            d.file("hooks.conf", HOOK);
            d.load().unwrap().main
        };
        assert_eq!(main("interval = 1_0\n").interval_minutes().unwrap(), 10);
        assert_eq!(main("interval = +01\n").interval_minutes().unwrap(), 1);
        for bad in ["0", "-5", "1.5", "x", "", "99999999999999999999"] {
            let e = main(&format!("interval = {bad}\n"))
                .interval_minutes()
                .unwrap_err();
            assert!(matches!(e, ConfError::Interval { .. }), "{bad}: {e}");
        }
        assert_eq!(main("umask = 22\n").umask().unwrap(), 0o022);
        assert_eq!(main("umask = 0077\n").umask().unwrap(), 0o077);
        assert_eq!(main("umask = 777\n").umask().unwrap(), 0o777);
        assert_eq!(main("umask =\n").umask().unwrap(), 0);
        assert_eq!(main("umask = _22\n").umask().unwrap(), 0o022);
        for bad in ["1000", "8", "0o22", "-1", "u"] {
            assert!(main(&format!("umask = {bad}\n")).umask().is_err(), "{bad}");
        }
        assert!(!main("").verbose(false).unwrap());
        assert!(main("verbose = On\n").verbose(false).unwrap());
        assert!(!main("verbose = false\n").verbose(false).unwrap());
        assert!(main("verbose = maybe\n").verbose(false).is_err());
        assert!(
            main("verbose = maybe\n").verbose(true).unwrap(),
            "-v wins, unread"
        );
        // A bad interval does not fail loading (--no-daemon never reads it).
        let _ = main("interval = 0\numask = 9\n");
    }

    #[test]
    fn python_int_matches_python() {
        // Expected values from CPython 3.11 `int(s)` / `int("0" + s, 8)`.
        for (s, want) in [
            ("1_5", Some(15)),
            (" 15 ", Some(15)),
            ("+15", Some(15)),
            ("015", Some(15)),
            ("-3", Some(-3)),
            ("1__5", None),
            ("_1", None),
            ("1_", None),
            ("", None),
            ("0x1", None),
        ] {
            assert_eq!(python_int(s, 10), want, "{s:?}");
        }
        for (s, want) in [
            ("015", Some(13)),
            ("0_22", Some(18)),
            ("00o22", None),
            ("0o_17", Some(15)),
            ("08", None),
        ] {
            assert_eq!(python_int(s, 8), want, "{s:?}");
        }
        assert!(interpret_boolean(" YES ") && interpret_boolean("y") && !interpret_boolean("on"));
    }
}
