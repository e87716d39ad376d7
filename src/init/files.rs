//! Init `files`: content, encoding, mode, owner, group, and symlinks (`mode: 120xxx`);
//! `source`, `authentication` and `context` are read here and applied by [`super::file_source`].

use std::path::Path;

use base64::Engine;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::Node;
use crate::sys::fs::{write_atomic, FileMeta, Root, WriteOutcome};

const KEYS: &[&str] = &[
    "content",
    "source",
    "encoding",
    "group",
    "owner",
    "mode",
    "authentication",
    "context",
];

/// New files without a `mode` get the permissions a root process with umask 022 would give them.
const DEFAULT_MODE: u32 = 0o644;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileSpec {
    pub path: String,
    pub content: FileContent,
    /// Permission bits; `None` keeps an existing file's mode.
    #[serde(serialize_with = "octal")]
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// A symlink whose target is `content`.
    pub symlink: bool,
    /// Downloaded when applied, instead of `content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Authentication entry named for `source` (none: chosen by URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<String>,
    /// Mustache data for a `source`; a `content` is rendered when parsed, so the plan shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileContent(pub Vec<u8>);

impl FileContent {
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl Serialize for FileContent {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.as_text() {
            Some(t) => s.serialize_str(t),
            None => s.serialize_str(&format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(&self.0)
            )),
        }
    }
}

fn octal<S: Serializer>(mode: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.serialize_str(&format!("{m:04o}")),
        None => s.serialize_none(),
    }
}

pub fn parse(node: &Node) -> Result<Vec<FileSpec>> {
    let mut out = node
        .entries()?
        .into_iter()
        .map(|(file, spec)| parse_one(file, &spec))
        .collect::<Result<Vec<_>>>()?;
    // cfn-init writes files in sorted path order, so parents listed later still come first.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// [`parse`] of a plain value, for unit tests elsewhere in the Init engine.
#[cfg(test)]
pub(crate) fn parse_at(v: &Value, path: &str) -> Result<Vec<FileSpec>> {
    parse(&crate::init::test_node(v, path))
}

fn parse_one(file: &str, spec: &Node) -> Result<FileSpec> {
    let path = spec.path();
    if !file.starts_with('/') {
        return Err(spec.error("file names must be absolute paths"));
    }
    let map = spec.mapping()?;
    spec.only_keys(KEYS)?;
    let str_key = |key: &str| -> Result<Option<String>> { spec.opt(key, Node::str_or_number) };

    let encoding = str_key("encoding")?.unwrap_or_else(|| "plain".into());
    let mut source = str_key("source")?;
    let context = super::file_source::context(map.get("context"), path)?;
    let content_value = map.get("content");
    // cfn-init (file_tool.py:213-221@25fabe91): a truthy `content` is written and `source`
    // ignored; a falsy one (`""`, `0`, `false`, `null`, `{}`, `[]`) falls back to `source`.
    let content_given = content_value.is_some_and(crate::init::mustache::truthy);
    if content_given && source.is_some() {
        tracing::warn!(
            key = path,
            "has both 'content' and 'source': the content is written and the source ignored, as cfn-init does"
        );
        source = None;
    }
    if encoding != "plain" && encoding != "base64" {
        tracing::warn!(
            key = %format!("{path}.encoding"),
            encoding,
            "not base64: the content is written as plain text, as cfn-init does"
        );
    }
    // A string's context applies unless it is base64 (file_tool.py:271-280@25fabe91).
    let mut context_applies = true;
    let content = match content_value {
        Some(Value::String(s)) if encoding == "base64" && !s.is_empty() => {
            context_applies = false;
            base64::engine::general_purpose::STANDARD
                // Templates often wrap base64 across lines.
                .decode(s.split_whitespace().collect::<String>())
                .map_err(|e| spec.key_error("content", format!("is not valid base64: {e}")))?
        }
        _ if source.is_some() => Vec::new(),
        // Not in cfn-init, which fails ("File specified without source or content"): an empty
        // string writes an empty file.
        Some(Value::String(s)) => s.clone().into_bytes(),
        // cfn-init writes any other truthy value with json.dump (the usual way to ship a JSON
        // config file); `context` does not apply to it.
        Some(v) if content_given => {
            context_applies = false;
            python_json(v).into_bytes()
        }
        Some(other) => {
            return Err(spec.key_error(
                "content",
                format!(
                    "is empty ({}) and there is no 'source' (cfn-init fails on it too)",
                    crate::input::short(other)
                ),
            ))
        }
        None => return Err(spec.error("has no 'content' or 'source'")),
    };
    let (content, context) = match context {
        Some(ctx) if source.is_none() && context_applies => (
            super::file_source::render(&content, &ctx, &spec.key_path("content"))?,
            None,
        ),
        Some(_) if source.is_none() => (content, None),
        other => (content, other),
    };

    let (mode, symlink) = match str_key("mode")? {
        Some(m) => parse_mode(&m, &spec.key_path("mode"))?,
        None => (None, false),
    };
    if symlink && source.is_some() {
        return Err(spec.key_error(
            "source",
            "a symlink takes its target from 'content', not 'source'",
        ));
    }
    if file.split('/').all(|part| part.is_empty() || part == ".") {
        // `/` or `//`: no entry can be written there (it once panicked, exit 101, no FAILURE).
        return Err(spec.error("names the root directory, not a file"));
    }
    if symlink && (content.is_empty() || content.contains(&b'\n')) {
        return Err(spec.key_error(
            "content",
            "a symlink's content is its target: one non-empty line",
        ));
    }
    Ok(FileSpec {
        path: file.to_string(),
        content: FileContent(content),
        mode,
        owner: str_key("owner")?,
        group: str_key("group")?,
        symlink,
        authentication: str_key("authentication")?,
        source,
        context,
    })
}

/// `json.dumps(v)` as Python writes it (cfn-init's `json.dump(content, f)`, file_tool.py:265-269
/// @25fabe91), so the file has the same bytes: `", "` and `": "` separators, document key order,
/// everything outside printable ASCII as `\uXXXX` (surrogate pairs beyond the BMP), floats as
/// Python's `repr`.
pub(crate) fn python_json(v: &Value) -> String {
    let mut out = String::new();
    python_json_into(v, &mut out);
    out
}

fn python_json_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    ' '..='~' => out.push(c),
                    _ => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json_into(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json_into(&Value::String(k.clone()), out);
                out.push_str(": ");
                python_json_into(x, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest digits that read back to `f`, positional when the
/// decimal exponent is in -4..16 (with at least `.0`), else `d.ddde+XX`.
pub(super) fn python_float_repr(f: f64) -> String {
    if !f.is_finite() {
        // Not reachable from JSON; Python would write these.
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e2".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is a number");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-5 < exp && exp < 16) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// cfn-init modes are octal (`int(mode, 8)`, so blanks, a `0o` prefix and `_` between digits
/// are accepted): usually six digits, two for the file type and four for the permissions. The
/// entry is a symlink when the type is 12 (`stat.S_ISLNK`); the permissions are the low twelve
/// bits (`stat.S_IMODE`), whatever other type is given (file_tool.py:93-94,136-139@25fabe91).
fn parse_mode(m: &str, path: &str) -> Result<(Option<u32>, bool)> {
    let bad = || {
        Error::invalid(
            path,
            format!("'{m}' is not an octal mode like \"000644\" (or \"120777\" for a symlink)"),
        )
    };
    let t = m.trim();
    let t = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    if t.is_empty()
        || t.starts_with('_')
        || t.ends_with('_')
        || t.contains("__")
        || !t.chars().all(|c| ('0'..='7').contains(&c) || c == '_')
    {
        return Err(bad());
    }
    let value = u64::from_str_radix(&t.replace('_', ""), 8).map_err(|_| bad())?;
    let symlink = value & 0o170000 == 0o120000;
    Ok((Some((value & 0o7777) as u32), symlink))
}

pub fn apply(spec: &FileSpec, root: &Root, config: &str) -> Result<WriteOutcome> {
    write(spec, &spec.content.0, root, config)
}

/// Writes `content` (the spec's own, or what its `source` gave) with the spec's mode and owner.
/// A file whose content was already this is reported `Unchanged` even when its mode or owner
/// were corrected: as in cfn-init (file_tool.py:187-192@25fabe91), only a content change is a
/// change for restart triggers.
pub(super) fn write(
    spec: &FileSpec,
    content: &[u8],
    root: &Root,
    config: &str,
) -> Result<WriteOutcome> {
    if spec.symlink {
        let outcome = write_symlink(root, &spec.path, spec.content.as_text().unwrap_or_default())?;
        lchown_link(spec, root, config)?;
        tracing::info!(config, path = %spec.path, ?outcome, "symlink");
        return Ok(outcome);
    }
    let existing_mode = root
        .parent(&spec.path, false)
        .ok()
        .and_then(|(dir, name)| dir.stat(&name).ok().flatten())
        .filter(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG)
        .map(|st| st.st_mode & 0o7777);
    let meta = FileMeta {
        mode: spec.mode.or(existing_mode).unwrap_or(DEFAULT_MODE),
        uid: spec
            .owner
            .as_deref()
            .map(|o| {
                lookup_user(
                    o,
                    &format!("{BLOCK_PATH}{config}.files.{}.owner", spec.path),
                )
            })
            .transpose()?,
        gid: spec
            .group
            .as_deref()
            .map(|g| {
                lookup_group(
                    g,
                    &format!("{BLOCK_PATH}{config}.files.{}.group", spec.path),
                )
            })
            .transpose()?,
    };
    let same_content = existing_mode.is_some() && same_bytes(root, &spec.path, content);
    let outcome = write_atomic(root, &spec.path, content, meta)?;
    tracing::info!(config, path = %spec.path, mode = format!("{:04o}", meta.mode), ?outcome, "file");
    Ok(if same_content {
        WriteOutcome::Unchanged
    } else {
        outcome
    })
}

const BLOCK_PATH: &str = "AWS::CloudFormation::Init.";

/// A symlink entry's `owner`/`group` apply to the link itself, as cfn-init's `os.lchown`
/// (posix_security.py:25-43@25fabe91); its target is never touched.
fn lchown_link(spec: &FileSpec, root: &Root, config: &str) -> Result<()> {
    let key = |k: &str| format!("{BLOCK_PATH}{config}.files.{}.{k}", spec.path);
    let uid = spec
        .owner
        .as_deref()
        .map(|o| lookup_user(o, &key("owner")))
        .transpose()?;
    let gid = spec
        .group
        .as_deref()
        .map(|g| lookup_group(g, &key("group")))
        .transpose()?;
    if uid.is_some() || gid.is_some() {
        // Through the link's directory handle: the link itself, resolved beneath the root.
        let (dir, name) = root.parent(&spec.path, false)?;
        dir.lchown(&name, uid, gid)
            .map_err(|e| Error::io("lchown", dir.shown(&name), e))?;
    }
    Ok(())
}

/// Whether the regular file at `path` (within `root`) holds exactly `content`.
fn same_bytes(root: &Root, path: &str, content: &[u8]) -> bool {
    use std::io::Read;
    let Ok((dir, name)) = root.parent(path, false) else {
        return false;
    };
    let Ok(mut f) = dir.read_file(&name) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).ok() != Some(content.len() as u64) {
        return false;
    }
    let mut buf = Vec::with_capacity(content.len());
    f.read_to_end(&mut buf).is_ok() && buf == content
}

fn lookup_user(name: &str, path: &str) -> Result<u32> {
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(Error::invalid(
            path,
            format!("user '{name}' does not exist"),
        )),
        Err(e) => Err(Error::invalid(
            path,
            format!("cannot look up user '{name}': {e}"),
        )),
    }
}

fn lookup_group(name: &str, path: &str) -> Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::invalid(
            path,
            format!("group '{name}' does not exist"),
        )),
        Err(e) => Err(Error::invalid(
            path,
            format!("cannot look up group '{name}': {e}"),
        )),
    }
}

/// Replaces whatever is at `path` with a symlink to `target`, atomically (new link under a
/// temporary name, then rename). Unlike cfn-init it never follows the link to chmod the target,
/// and the target need not exist yet. The link itself is the entry written: its parent is
/// resolved within the root, the link is never resolved.
fn write_symlink(root: &Root, path: &str, target: &str) -> Result<WriteOutcome> {
    let link = root.map(path)?;
    let (dir, name) = root.parent(path, true)?;
    if let Ok(current) = dir.read_link(&name) {
        if current == Path::new(target) {
            return Ok(WriteOutcome::Unchanged);
        }
    }
    let existed = dir
        .stat(&name)
        .map_err(|e| Error::io("stat", &link, e))?
        .is_some();
    let prefix = format!("{}link.", crate::sys::fs::temp_prefix());
    let tmp = dir
        .create_temp_symlink(&prefix, Path::new(target))
        .map_err(|e| Error::io("create symlink in", dir.path(), e))?;
    dir.rename(&tmp, &name).map_err(|e| {
        let _ = dir.unlink(&tmp);
        Error::io("rename symlink into place", &link, e)
    })?;
    dir.sync()
        .map_err(|e| Error::io("fsync directory", dir.path(), e))?;
    Ok(if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &Value, path: &str) -> Result<Vec<FileSpec>> {
        parse_at(v, path)
    }
    use serde_json::json;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn one(spec: Value) -> Result<FileSpec> {
        parse(&json!({ "/etc/x": spec }), "I.config.files").map(|mut v| v.remove(0))
    }

    #[test]
    fn an_entry_at_the_root_is_refused_when_parsed() {
        for at in ["/", "//", "/./"] {
            let spec = json!({"content": "/tmp", "mode": "120777"});
            let e = parse(&json!({ at: spec }), "I.config.files").unwrap_err();
            assert!(
                e.to_string().contains("names the root directory"),
                "{at}: {e}"
            );
        }
    }

    #[test]
    fn content_kinds() {
        assert_eq!(one(json!({"content": "a\n"})).unwrap().content.0, b"a\n");
        assert_eq!(
            one(json!({"content": {"k": [1], "a": "\u{e9}"}}))
                .unwrap()
                .content
                .0,
            br#"{"k": [1], "a": "\u00e9"}"#
        );
        let b = one(json!({"content": "aGVs\nbG8=", "encoding": "base64"})).unwrap();
        assert_eq!(b.content.0, b"hello");
        let e = one(json!({"content": "!!", "encoding": "base64"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("I.config.files./etc/x.content") && e.contains("base64"),
            "{e}"
        );
        // As cfn-init: an encoding other than base64 is plain; a truthy non-string is JSON;
        // context does not apply to base64 or JSON content; a falsy content is no content.
        let c = |v| one(v).unwrap().content.0;
        assert_eq!(c(json!({"content": "x", "encoding": "gzip"})), b"x");
        assert_eq!(c(json!({"content": true})), b"true");
        assert_eq!(c(json!({"content": 5, "encoding": "base64"})), b"5");
        assert_eq!(
            c(json!({"content": "e3t4fX0=", "encoding": "base64", "context": {"x": 1}})),
            b"{{x}}"
        );
        assert_eq!(
            c(json!({"content": {"a": "{{x}}"}, "context": {"x": 1}})),
            br#"{"a": "{{x}}"}"#
        );
        for empty in [json!(0), json!(false), json!(null), json!({}), json!([])] {
            let e = one(json!({ "content": empty })).unwrap_err().to_string();
            assert!(e.contains("content") && e.contains("empty"), "{e}");
        }
        assert!(one(json!({"mode": "000644"}))
            .unwrap_err()
            .to_string()
            .contains("no 'content' or 'source'"));
    }

    #[test]
    fn json_content_is_python_json_dumps() {
        // Expected strings from CPython 3.11 json.dumps.
        let v: Value = serde_json::from_str(
            r#"[1, -7, 2.5, 1e16, 1e15, 0.00001, 0.0001, 123456789.125, -0.0, 1E2, 1.5e-7, 12345678901234567890, 0.1]"#,
        )
        .unwrap();
        assert_eq!(
            python_json(&v),
            "[1, -7, 2.5, 1e+16, 1000000000000000.0, 1e-05, 0.0001, 123456789.125, -0.0, 100.0, 1.5e-07, 12345678901234567890, 0.1]"
        );
        let v = json!({"q": "a\"b\\c/d\n\t\u{1}\u{7f} \u{1F600}", "e": {}, "l": []});
        assert_eq!(
            python_json(&v),
            r#"{"q": "a\"b\\c/d\n\t\u0001\u007f \ud83d\ude00", "e": {}, "l": []}"#
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("000644", "p").unwrap(), (Some(0o644), false));
        assert_eq!(parse_mode("100600", "p").unwrap(), (Some(0o600), false));
        assert_eq!(parse_mode("0755", "p").unwrap(), (Some(0o755), false));
        assert_eq!(parse_mode("120777", "p").unwrap(), (Some(0o777), true));
        // As Python's int(mode, 8); another file type is a regular file with those permissions.
        assert_eq!(parse_mode(" 0o644 ", "p").unwrap(), (Some(0o644), false));
        assert_eq!(parse_mode("060644", "p").unwrap(), (Some(0o644), false));
        assert_eq!(parse_mode("0000644", "p").unwrap(), (Some(0o644), false));
        for bad in ["", "0008", "abc", "6_", "0x1"] {
            let e = parse_mode(bad, "I.files./x.mode").unwrap_err().to_string();
            assert!(
                e.contains("I.files./x.mode") && e.contains(&format!("'{bad}'")),
                "{e}"
            );
        }
        // YAML without quotes turns 644 into a number: read its digits as octal, as cfn-init does.
        assert_eq!(
            one(json!({"content": "", "mode": 644})).unwrap().mode,
            Some(0o644)
        );
    }

    #[test]
    fn unknown_and_unsupported_keys() {
        assert_eq!(
            one(json!({"content": "", "mod": "000644"})).unwrap().mode,
            None
        );
        let v = json!({"/etc/x": {"content": "", "mod": "000644"}});
        let e = super::parse(&Node::root(
            &v,
            "I.config.files",
            crate::input::Keys::Strict,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/x.mod") && e.contains("unknown key"), "{e}");
        // A truthy content wins over source; a falsy one gives way to it (cfn-init).
        let f = one(json!({"source": "https://example.com/x", "content": "x"})).unwrap();
        assert_eq!((f.source, f.content.0), (None, b"x".to_vec()));
        let f = one(json!({"source": "https://example.com/x", "content": {}})).unwrap();
        assert_eq!(f.source.as_deref(), Some("https://example.com/x"));
        let e = parse(&json!({"etc/x": {"content": ""}}), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn sorted_by_path() {
        let v = parse(
            &json!({"/b": {"content": ""}, "/a/z": {"content": ""}}),
            "f",
        )
        .unwrap();
        assert_eq!(v[0].path, "/a/z");
    }

    #[test]
    fn apply_writes_under_root_with_mode_and_keeps_existing_mode() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let spec =
            one(json!({"content": "hi", "mode": "000600", "owner": "root", "group": "0"})).unwrap();
        apply(&spec, &root, "config").unwrap();
        let p = d.path().join("etc/x");
        assert_eq!(std::fs::read(&p).unwrap(), b"hi");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);

        // A mode-only correction is applied but is not a change (cfn-init compares content).
        let spec = one(json!({"content": "hi", "mode": "000640"})).unwrap();
        assert_eq!(
            apply(&spec, &root, "config").unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        let spec = one(json!({"content": "hi2"})).unwrap();
        apply(&spec, &root, "config").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);

        let e = apply(
            &one(json!({"content": "", "owner": "no-such-user-xyz"})).unwrap(),
            &root,
            "config",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("config.files./etc/x.owner") && e.contains("no-such-user-xyz"),
            "{e}"
        );
    }

    #[test]
    fn symlink_to_missing_target_does_not_touch_target() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let target = d.path().join("real");
        let spec = parse(
            &json!({"/etc/link": {"content": target.to_str().unwrap(), "mode": "120777"}}),
            "f",
        )
        .unwrap()
        .remove(0);
        apply(&spec, &root, "config").unwrap();
        assert_eq!(
            std::fs::read_link(d.path().join("etc/link")).unwrap(),
            target
        );
        assert!(!target.exists());
        std::fs::write(&target, "").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        apply(&spec, &root, "config").unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o600);
    }
}
