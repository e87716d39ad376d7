//! Which hook fires: cfn-hup's `HookProcessor._process_hook` and the helpers it calls
//! (update_hooks.py:632-745@25fabe91, util.py:389-407@25fabe91), as pure functions of the
//! hook, the value it last stored and the resource DescribeStackResource returned.
//!
//! Python semantics kept: "has a value" is truthiness (`None`, `""`, `{}`, `[]`, `0`, `0.0`,
//! `false` have none); "changed" is Python `!=` (so `1`, `1.0` and `true` are equal, and key
//! order does not matter); the environment values are `json.dumps` text.

use serde_json::Value as Json;

use crate::init::python_json;

/// A value at a hook's path: a piece of the resource's Metadata (or its physical id, a JSON
/// string), or its `LastUpdatedTimestamp`, which cfn-hup keeps as a `datetime`.
#[derive(Debug, Clone)]
pub enum Value {
    Json(Json),
    Timestamp(Timestamp),
}

/// `datetime.datetime.utcfromtimestamp(LastUpdatedTimestamp)` (cfn_client.py:235-236): UTC,
/// microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub micros: u32,
}

impl Timestamp {
    /// From whole seconds and nanoseconds, rounding to microseconds half to even as
    /// `utcfromtimestamp` rounds its float.
    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Timestamp {
        let (q, r) = (nanos / 1000, nanos % 1000);
        let up = r > 500 || (r == 500 && q % 2 == 1);
        let micros = q + u32::from(up);
        if micros == 1_000_000 {
            Timestamp {
                secs: secs + 1,
                micros: 0,
            }
        } else {
            Timestamp { secs, micros }
        }
    }

    fn civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's days-to-civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60)
    }

    /// `datetime.isoformat()`: `YYYY-MM-DDTHH:MM:SS`, `.ffffff` only when there are
    /// microseconds (update_hooks.py:684-685 uses it for the environment).
    pub fn isoformat(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        let base = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if self.micros == 0 {
            base
        } else {
            format!("{base}.{:06}", self.micros)
        }
    }

    /// `strftime('"%Y-%m-%dT%H:%M:%S.%f"')`, quotes included: how cfn-hup's metadata db stores
    /// a datetime (json_file_manager.py:71, 104-108).
    pub fn db_format(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!(
            "\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}\"",
            self.micros
        )
    }

    /// The inverse of [`Timestamp::db_format`].
    pub fn parse_db_format(s: &str) -> Option<Timestamp> {
        let s = s.strip_prefix('"')?.strip_suffix('"')?;
        let b = s.as_bytes();
        if b.len() != 26 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'.' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = &s[r];
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let micros = num(20..26)? as u32;
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        // civil-to-days.
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2.rem_euclid(400);
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let t = Timestamp {
            secs: days * 86_400 + h * 3600 + mi * 60 + sec,
            micros,
        };
        (t.db_format() == format!("\"{s}\"")).then_some(t)
    }
}

/// Does `v` have a value, as `if old_data` / `if new_data` ask.
pub fn has_value(v: Option<&Value>) -> bool {
    match v {
        None => false,
        Some(Value::Timestamp(_)) => true,
        Some(Value::Json(j)) => crate::input::python_truthy(j),
    }
}

/// A JSON number or boolean as Python compares it: `True == 1 == 1.0`, and an int against a
/// float exactly.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(v: &Json) -> Option<Num> {
    match v {
        Json::Bool(b) => Some(Num::Int(i128::from(*b))),
        Json::Number(n) => Some(if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        _ => None,
    }
}

fn int_eq_float(i: i128, f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1e38 && f as i128 == i
}

/// Python `==` on values `json.loads` produced.
pub fn py_eq(a: &Json, b: &Json) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::Int(x), Num::Int(y)) => x == y,
            (Num::Float(x), Num::Float(y)) => x == y,
            (Num::Int(i), Num::Float(f)) | (Num::Float(f), Num::Int(i)) => int_eq_float(i, f),
        };
    }
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| py_eq(p, q)))
        }
        _ => false,
    }
}

fn values_differ(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Json(a), Value::Json(b)) => !py_eq(a, b),
        (Value::Timestamp(a), Value::Timestamp(b)) => a != b,
        _ => true,
    }
}

/// What part of the resource a hook watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// `Resources.<Id>.Metadata[.sub.path]`: the sub-path as written (dots, `\.` escapes).
    Metadata(String),
    /// `Resources.<Id>.PhysicalResourceId` (anything after it is ignored, as in cfn-hup).
    PhysicalResourceId,
    /// `Resources.<Id>`: the resource's last-updated time.
    LastUpdated,
}

/// A hook's `path`, parsed as `_retrieve_path_data` does (update_hooks.py:699-718).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPath {
    pub logical_id: String,
    pub part: Part,
}

/// cfn-hup raises `FatalUpdateError` for these, which stops the daemon when the hook is first
/// processed; we refuse them when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("Unsupported path: paths must be in the form Resources.<LogicalResourceId>(.Metadata|PhysicalResourceId)(.<optional Metadata subkey>). Input: {0}")]
    Form(String),
    #[error("Unsupported path: only changes to Resources are supported (path: {0})")]
    NotResources(String),
    #[error("Unsupported path: only Metadata or PhysicalResourceId can be specified after LogicalResourceId (path: {0})")]
    NotMetadata(String),
    /// Ours: cfn-hup would ask CloudFormation for resource "" on every poll.
    #[error("Unsupported path: the LogicalResourceId is empty (path: {0})")]
    EmptyLogicalId(String),
}

impl HookPath {
    pub fn parse(path: &str) -> Result<HookPath, PathError> {
        // `path.split('.', 3)`: at most four parts, the last keeping its dots.
        let parts: Vec<&str> = path.splitn(4, '.').collect();
        if parts.len() < 2 {
            return Err(PathError::Form(path.into()));
        }
        if parts[0].to_lowercase() != "resources" {
            return Err(PathError::NotResources(path.into()));
        }
        let part = match parts.get(2).map(|p| p.to_lowercase()) {
            None => Part::LastUpdated,
            Some(p) if p == "metadata" => Part::Metadata(parts.get(3).unwrap_or(&"").to_string()),
            Some(p) if p == "physicalresourceid" => Part::PhysicalResourceId,
            Some(_) => return Err(PathError::NotMetadata(path.into())),
        };
        if parts[1].is_empty() {
            return Err(PathError::EmptyLogicalId(path.into()));
        }
        Ok(HookPath {
            logical_id: parts[1].to_string(),
            part,
        })
    }

    /// The suffix of `CFN_OLD_*`/`CFN_NEW_*` (`_retrieve_env_key`, update_hooks.py:688-697).
    pub fn env_key(&self) -> &'static str {
        match self.part {
            Part::Metadata(_) => "METADATA",
            Part::PhysicalResourceId => "PHYSICAL_RESOURCE_ID",
            Part::LastUpdated => "LAST_UPDATED",
        }
    }
}

/// The resource as DescribeStackResource described it (cfn_client.py:230-247).
#[derive(Debug, Clone, Default)]
pub struct Resource {
    pub status: Option<String>,
    /// `json.loads(Metadata)` when the Metadata string is not empty.
    pub metadata: Option<Json>,
    pub physical_id: Option<String>,
    pub last_updated: Option<Timestamp>,
}

impl Resource {
    /// Its status when it ends in `_IN_PROGRESS`: cfn-hup skips such a resource for this poll
    /// (update_hooks.py:727-731@25fabe91), and so does the zero-config poll.
    pub fn in_progress(&self) -> Option<&str> {
        self.status
            .as_deref()
            .filter(|s| s.ends_with("_IN_PROGRESS"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// Python raises `TypeError` in `util.extract_value` (a string index on a list or string,
    /// or `in` on a number, boolean or null); cfn-hup logs it and skips the hook for this poll.
    #[error("Metadata path {path}: {element:?} indexes into a {kind}, not a mapping")]
    NotAMapping {
        path: String,
        element: String,
        kind: &'static str,
    },
}

/// What the poll found at a hook's path.
#[derive(Debug, Clone)]
pub enum Found {
    /// `_IN_PROGRESS` status: the hook is skipped this poll, nothing stored.
    InProgress(String),
    Value(Option<Value>),
}

/// `_retrieve_path_data` after the DescribeStackResource call (update_hooks.py:724-745).
pub fn value_at(path: &HookPath, r: &Resource) -> Result<Found, WalkError> {
    if let Some(status) = r.in_progress() {
        return Ok(Found::InProgress(status.to_string()));
    }
    let status = r.status.as_deref().unwrap_or("");
    Ok(Found::Value(match &path.part {
        Part::Metadata(sub) => match &r.metadata {
            Some(m) if crate::input::python_truthy(m) => {
                extract_value(m, sub)?.cloned().map(Value::Json)
            }
            _ => None,
        },
        _ if status == "DELETE_COMPLETE" => None,
        Part::PhysicalResourceId => r.physical_id.clone().map(|s| Value::Json(Json::String(s))),
        Part::LastUpdated => r.last_updated.map(Value::Timestamp),
    }))
}

/// `util.extract_value` (util.py:389-407): the path split on dots not preceded by `\`, `\.`
/// read as `.`; a missing key is no value.
pub fn extract_value<'a>(metadata: &'a Json, path: &str) -> Result<Option<&'a Json>, WalkError> {
    if path.is_empty() {
        return Ok(Some(metadata));
    }
    let mut cur = metadata;
    for element in split_path(path) {
        // `element in return_data`, then `return_data[element]`.
        let kind = match cur {
            Json::Object(m) => match m.get(&element) {
                Some(v) => {
                    cur = v;
                    continue;
                }
                None => return Ok(None),
            },
            Json::Array(a) => {
                if !a.iter().any(|x| x.as_str() == Some(element.as_str())) {
                    return Ok(None);
                }
                "list"
            }
            Json::String(s) => {
                if !s.contains(element.as_str()) {
                    return Ok(None);
                }
                "string"
            }
            Json::Number(_) => "number",
            Json::Bool(_) => "boolean",
            Json::Null => "null",
        };
        return Err(WalkError::NotAMapping {
            path: path.to_string(),
            element,
            kind,
        });
    }
    Ok(Some(cur))
}

/// `_dot_split.split(path)` with `_slash_replace` applied to each element.
fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev = None;
    for c in path.chars() {
        if c == '.' && prev != Some('\\') {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
        prev = Some(c);
    }
    out.push(cur);
    out.into_iter().map(|e| e.replace("\\.", ".")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Add,
    Update,
    Remove,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Add => "post.add",
            Trigger::Update => "post.update",
            Trigger::Remove => "post.remove",
        }
    }
}

/// What to do for one hook this poll.
#[derive(Debug, Clone)]
pub enum Decision {
    /// `_IN_PROGRESS` (the status, for the log): nothing runs, nothing is stored.
    Skip(String),
    /// No trigger fires: store the new value (update_hooks.py:650-655), even if it is none.
    Record(Option<Value>),
    /// Run the action with these extra environment variables; store `new` only if it succeeds
    /// (update_hooks.py:671-677).
    Run {
        trigger: Trigger,
        env: Vec<(String, String)>,
        new: Option<Value>,
    },
}

/// `_process_hook` (update_hooks.py:632-663). `triggers` as configured; `old` from the store.
pub fn decide(triggers: &[String], path: &HookPath, old: Option<&Value>, found: Found) -> Decision {
    let new = match found {
        Found::InProgress(status) => return Decision::Skip(status),
        Found::Value(v) => v,
    };
    let has = |t: &str| triggers.iter().any(|x| x == t);
    let (o, n) = (has_value(old), has_value(new.as_ref()));
    let trigger = if has("post.add") && !o && n {
        Trigger::Add
    } else if has("post.remove") && o && !n {
        Trigger::Remove
    } else if has("post.update")
        && o
        && n
        && values_differ(
            old.expect("has a value"),
            new.as_ref().expect("has a value"),
        )
    {
        Trigger::Update
    } else {
        return Decision::Record(new);
    };
    let key = path.env_key();
    let mut env = Vec::new();
    if o {
        env.push((
            format!("CFN_OLD_{key}"),
            as_string(old.expect("has a value")),
        ));
    }
    if n {
        env.push((
            format!("CFN_NEW_{key}"),
            as_string(new.as_ref().expect("has a value")),
        ));
    }
    Decision::Run { trigger, env, new }
}

/// `_as_string` (update_hooks.py:681-686): a string as is, a datetime `isoformat()`, anything
/// else `json.dumps`.
pub fn as_string(v: &Value) -> String {
    match v {
        Value::Json(Json::String(s)) => s.clone(),
        Value::Json(j) => python_json(j),
        Value::Timestamp(t) => t.isoformat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> HookPath {
        HookPath::parse(s).unwrap()
    }

    fn t(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn j(v: Json) -> Option<Value> {
        Some(Value::Json(v))
    }

    fn found(v: Option<Value>) -> Found {
        Found::Value(v)
    }

    fn fired(d: &Decision) -> Option<Trigger> {
        match d {
            Decision::Run { trigger, .. } => Some(*trigger),
            _ => None,
        }
    }

    #[test]
    fn paths_as_cfn_hup_parses_them() {
        assert_eq!(
            p("Resources.LC.Metadata.AWS::CloudFormation::Init"),
            HookPath {
                logical_id: "LC".into(),
                part: Part::Metadata("AWS::CloudFormation::Init".into())
            }
        );
        assert_eq!(p("resources.LC.metadata").part, Part::Metadata("".into()));
        assert_eq!(
            p("Resources.LC.Metadata.a.b\\.c").part,
            Part::Metadata("a.b\\.c".into())
        );
        assert_eq!(
            p("RESOURCES.LC.PhysicalResourceId.x.y").part,
            Part::PhysicalResourceId
        );
        assert_eq!(p("Resources.LC").part, Part::LastUpdated);
        assert_eq!(p("Resources.LC").env_key(), "LAST_UPDATED");
        assert_eq!(
            p("Resources.LC.physicalresourceid").env_key(),
            "PHYSICAL_RESOURCE_ID"
        );
        assert_eq!(p("Resources.LC.Metadata.x").env_key(), "METADATA");
        assert!(matches!(
            HookPath::parse("Resources"),
            Err(PathError::Form(_))
        ));
        assert!(matches!(
            HookPath::parse("Outputs.X"),
            Err(PathError::NotResources(_))
        ));
        assert!(matches!(
            HookPath::parse("Resources.X.Properties"),
            Err(PathError::NotMetadata(_))
        ));
        assert!(matches!(
            HookPath::parse("Resources..Metadata"),
            Err(PathError::EmptyLogicalId(_))
        ));
    }

    #[test]
    fn extract_value_walks_like_python() {
        let m = json!({"a": {"b.c": 1, "b": {"c": 2}, "l": ["x", "y"], "s": "hello", "n": 5, "z": null, "": 7}});
        assert_eq!(extract_value(&m, "a.b.c").unwrap(), Some(&json!(2)));
        assert_eq!(extract_value(&m, "a.b\\.c").unwrap(), Some(&json!(1)));
        assert_eq!(extract_value(&m, "a.").unwrap(), Some(&json!(7)));
        assert_eq!(extract_value(&m, "a.missing.x").unwrap(), None);
        assert_eq!(extract_value(&m, "").unwrap(), Some(&m));
        // `'q' in ['x', 'y']` is False: no value; `'x' in [...]` then `list['x']`: TypeError.
        assert_eq!(extract_value(&m, "a.l.q").unwrap(), None);
        assert!(extract_value(&m, "a.l.x").is_err());
        // Substring test on a string, then `str['ell']`: TypeError.
        assert_eq!(extract_value(&m, "a.s.q").unwrap(), None);
        assert!(extract_value(&m, "a.s.ell").is_err());
        assert!(extract_value(&m, "a.n.x").is_err());
        assert!(extract_value(&m, "a.z.x").is_err());
    }

    #[test]
    fn value_at_follows_retrieve_path_data() {
        let r = Resource {
            status: Some("UPDATE_COMPLETE".into()),
            metadata: Some(json!({"k": {"v": 1}})),
            physical_id: Some("i-1".into()),
            last_updated: Some(Timestamp { secs: 0, micros: 0 }),
        };
        let v = |path: &str, r: &Resource| match value_at(&p(path), r).unwrap() {
            Found::Value(v) => v.map(|v| as_string(&v)),
            Found::InProgress(s) => Some(format!("in progress {s}")),
        };
        assert_eq!(
            v("Resources.R.Metadata.k", &r).as_deref(),
            Some("{\"v\": 1}")
        );
        assert_eq!(
            v("Resources.R.PhysicalResourceId", &r).as_deref(),
            Some("i-1")
        );
        assert_eq!(v("Resources.R", &r).as_deref(), Some("1970-01-01T00:00:00"));
        let gone = Resource {
            status: Some("DELETE_COMPLETE".into()),
            ..r.clone()
        };
        // Metadata is read even when deleted; the others are none.
        assert!(v("Resources.R.Metadata.k", &gone).is_some());
        assert_eq!(v("Resources.R.PhysicalResourceId", &gone), None);
        assert_eq!(v("Resources.R", &gone), None);
        let busy = Resource {
            status: Some("UPDATE_IN_PROGRESS".into()),
            ..r.clone()
        };
        assert_eq!(
            v("Resources.R.Metadata.k", &busy).as_deref(),
            Some("in progress UPDATE_IN_PROGRESS")
        );
        // Empty metadata (`{}`) is no metadata, whatever the sub-path.
        let empty = Resource {
            metadata: Some(json!({})),
            ..r.clone()
        };
        assert_eq!(v("Resources.R.Metadata", &empty), None);
    }

    #[test]
    fn the_three_triggers() {
        let all = t(&["post.add", "post.update", "post.remove"]);
        let path = p("Resources.R.Metadata.k");
        let d = |tr: &[String], old: Option<Value>, new: Option<Value>| {
            decide(tr, &path, old.as_ref(), found(new))
        };
        // First poll: no stored value, a new one.
        assert_eq!(
            fired(&d(&all, None, j(json!({"a": 1})))),
            Some(Trigger::Add)
        );
        assert_eq!(
            fired(&d(&t(&["post.update"]), None, j(json!({"a": 1})))),
            None
        );
        // Change.
        assert_eq!(
            fired(&d(&all, j(json!(1)), j(json!(2)))),
            Some(Trigger::Update)
        );
        assert_eq!(fired(&d(&t(&["post.add"]), j(json!(1)), j(json!(2)))), None);
        // No change, in Python's sense.
        for (a, b) in [
            (json!(1), json!(1.0)),
            (json!(1), json!(true)),
            (json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})),
        ] {
            assert_eq!(fired(&d(&all, j(a.clone()), j(b.clone()))), None, "{a} {b}");
        }
        assert_eq!(
            fired(&d(&all, j(json!([1, 2])), j(json!([2, 1])))),
            Some(Trigger::Update)
        );
        assert_eq!(
            fired(&d(&all, j(json!("1")), j(json!(1)))),
            Some(Trigger::Update)
        );
        // Gone or emptied: remove; falsy values are no value.
        for gone in [
            None,
            j(json!("")),
            j(json!(0)),
            j(json!(false)),
            j(json!([])),
            j(json!({})),
            j(json!(null)),
        ] {
            assert_eq!(
                fired(&d(&all, j(json!("x")), gone.clone())),
                Some(Trigger::Remove),
                "{gone:?}"
            );
            assert_eq!(fired(&d(&all, gone.clone(), gone.clone())), None);
        }
        // Unknown triggers and case differences never fire.
        assert_eq!(
            fired(&d(&t(&["Post.Add", "post.add "]), None, j(json!(1)))),
            None
        );
        // In progress: skip.
        assert!(matches!(
            decide(&all, &path, None, Found::InProgress("X_IN_PROGRESS".into())),
            Decision::Skip(s) if s == "X_IN_PROGRESS"
        ));
    }

    #[test]
    fn no_trigger_records_the_new_value_even_none() {
        let path = p("Resources.R.Metadata.k");
        match decide(&t(&["post.update"]), &path, None, found(j(json!(3)))) {
            Decision::Record(Some(Value::Json(v))) => assert_eq!(v, json!(3)),
            other => panic!("{other:?}"),
        }
        match decide(
            &t(&["post.update"]),
            &path,
            j(json!(3)).as_ref(),
            found(None),
        ) {
            Decision::Record(None) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn environment_only_for_non_empty_values_as_json_dumps() {
        let all = t(&["post.add", "post.update", "post.remove"]);
        let env = |path: &str, old: Option<Value>, new: Option<Value>| match decide(
            &all,
            &p(path),
            old.as_ref(),
            found(new),
        ) {
            Decision::Run { env, .. } => env,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            env(
                "Resources.R.Metadata",
                None,
                j(json!({"b": [1, 2.5, "é"], "a": true}))
            ),
            [(
                "CFN_NEW_METADATA".to_string(),
                "{\"b\": [1, 2.5, \"\\u00e9\"], \"a\": true}".to_string()
            )]
        );
        assert_eq!(
            env(
                "Resources.R.PhysicalResourceId",
                j(json!("i-1")),
                j(json!("i-2"))
            ),
            [
                (
                    "CFN_OLD_PHYSICAL_RESOURCE_ID".to_string(),
                    "i-1".to_string()
                ),
                (
                    "CFN_NEW_PHYSICAL_RESOURCE_ID".to_string(),
                    "i-2".to_string()
                )
            ]
        );
        assert_eq!(
            env("Resources.R.Metadata.x", j(json!(7)), j(json!(""))),
            [("CFN_OLD_METADATA".to_string(), "7".to_string())]
        );
        let ts = |s, m| Some(Value::Timestamp(Timestamp { secs: s, micros: m }));
        assert_eq!(
            env(
                "Resources.R",
                ts(1_700_000_000, 123_457),
                ts(1_700_000_060, 0)
            ),
            [
                (
                    "CFN_OLD_LAST_UPDATED".to_string(),
                    "2023-11-14T22:13:20.123457".to_string()
                ),
                (
                    "CFN_NEW_LAST_UPDATED".to_string(),
                    "2023-11-14T22:14:20".to_string()
                )
            ]
        );
    }

    #[test]
    fn timestamps_as_python_datetime() {
        // Expected strings from CPython 3.11 datetime.utcfromtimestamp.
        let t = |s, n| Timestamp::from_secs_nanos(s, n);
        assert_eq!(t(-2, 500_000_000).isoformat(), "1969-12-31T23:59:58.500000");
        assert_eq!(
            t(1_700_000_000, 123_456_700).isoformat(),
            "2023-11-14T22:13:20.123457"
        );
        assert_eq!(t(0, 999_999_500).isoformat(), "1970-01-01T00:00:01");
        assert_eq!(t(0, 2_500).micros, 2, "half to even");
        assert_eq!(t(0, 3_500).micros, 4, "half to even");
        let x = t(951_782_400, 5_000); // 2000-02-29
        assert_eq!(x.db_format(), "\"2000-02-29T00:00:00.000005\"");
        assert_eq!(Timestamp::parse_db_format(&x.db_format()), Some(x));
        assert_eq!(
            Timestamp::parse_db_format("\"2001-02-29T00:00:00.000000\""),
            None
        );
        assert_eq!(
            Timestamp::parse_db_format("2000-02-29T00:00:00.000000"),
            None
        );
    }
}
