//! The one reader of input documents (the `ecs-bootstrap:` block, `AWS::CloudFormation::Init`,
//! `AWS::CloudFormation::Authentication`): a [`Node`] is a value with the key path that leads to
//! it (`AWS::CloudFormation::Init.config.files./etc/x.mode`), and its typed accessors fail with
//! an error naming that path, always the same way ([`Node::error`], an [`Error::Invalid`], exit
//! code 3). In a `--template` dry run, [`locate`] adds the template's file:line to such errors.
//!
//! Unknown keys follow the document's owner ([`Keys`]): in our own block a typo is an error; in
//! the Init block cfn-init ignores it, so it is a warning unless `--strict`.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::template::{Template, TemplateError};

/// What an unknown key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Our own block: an error ("allowed: ...").
    Refuse,
    /// cfn-init's blocks: cfn-init ignores such a key (its objects read only the keys they
    /// know), so it is ignored with a warning naming it.
    Warn,
    /// cfn-init's blocks under `--strict`: the warning's text is the error.
    Strict,
}

impl Keys {
    /// The policy of cfn-init's blocks: [`Keys::Strict`] under `--strict`, else [`Keys::Warn`].
    pub fn cfn_init(strict: bool) -> Keys {
        if strict {
            Keys::Strict
        } else {
            Keys::Warn
        }
    }
}

/// A value of an input document and the key path that leads to it.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    value: &'a Value,
    path: String,
    keys: Keys,
}

impl<'a> Node<'a> {
    /// The top of a document (or of a part of one) whose key path is `path`.
    pub fn root(value: &'a Value, path: impl Into<String>, keys: Keys) -> Self {
        Node {
            value,
            path: path.into(),
            keys,
        }
    }

    pub fn value(&self) -> &'a Value {
        self.value
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The one constructor of input errors: `<path>: <message>`.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::invalid(&self.path, message)
    }

    /// The key path of `key` under this node, for errors about a key that is absent.
    pub fn key_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// An error at `key` under this node (`<path>.<key>: <message>`), present or not.
    pub fn key_error(&self, key: &str, message: impl Into<String>) -> Error {
        Error::invalid(self.key_path(key), message)
    }

    /// `value` as the child `key` of this node.
    pub fn child(&self, key: &str, value: &'a Value) -> Node<'a> {
        Node {
            value,
            path: self.key_path(key),
            keys: self.keys,
        }
    }

    /// `value` as item `i` of this list node (`<path>[i]`).
    pub fn item(&self, i: usize, value: &'a Value) -> Node<'a> {
        Node {
            value,
            path: format!("{}[{i}]", self.path),
            keys: self.keys,
        }
    }

    /// The value's kind in an error: "a mapping", "a list", ...
    pub fn kind(&self) -> &'static str {
        kind(self.value)
    }

    /// The value in an error: short, on one line.
    pub fn short(&self) -> String {
        short(self.value)
    }

    /// The mapping itself; an error when the value is not one.
    pub fn mapping(&self) -> Result<&'a Map<String, Value>> {
        self.value
            .as_object()
            .ok_or_else(|| self.error(format!("must be a mapping, got {}", self.kind())))
    }

    /// The mapping's entries as nodes, in document order.
    pub fn entries(&self) -> Result<Vec<(&'a str, Node<'a>)>> {
        Ok(self
            .mapping()?
            .iter()
            .map(|(k, v)| (k.as_str(), self.child(k, v)))
            .collect())
    }

    /// The child `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let v = self.value.as_object()?.get(key)?;
        Some(self.child(key, v))
    }

    /// The child `key`; "is required" at `<path>.<key>` when absent.
    pub fn required(&self, key: &str) -> Result<Node<'a>> {
        self.get(key)
            .ok_or_else(|| self.key_error(key, "is required"))
    }

    /// `f` of the child `key`, when present.
    pub fn opt<T>(&self, key: &str, f: impl FnOnce(&Node<'a>) -> Result<T>) -> Result<Option<T>> {
        self.get(key).map(|n| f(&n)).transpose()
    }

    /// The child `key` as a string ([`Node::str`]), when present.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        self.opt(key, Node::str)
    }

    /// Checks this mapping's keys against `known`; an unknown one is handled as [`Keys`] says.
    pub fn only_keys(&self, known: &[&str]) -> Result<()> {
        self.only_keys_named("key", known)
    }

    /// [`Node::only_keys`] where the keys are names of something else (`what`: "package
    /// manager", "service manager").
    pub fn only_keys_named(&self, what: &str, known: &[&str]) -> Result<()> {
        for key in self.mapping()?.keys() {
            if !known.contains(&key.as_str()) {
                self.unknown(key, what, known)?;
            }
        }
        Ok(())
    }

    /// This mapping's key `key` is not one of `known` (`what` it names: "key", "service
    /// manager"): handled as [`Keys`] says. For a parser that meets its keys one at a time.
    pub fn unknown(&self, key: &str, what: &str, known: &[&str]) -> Result<()> {
        unknown_key(&self.key_path(key), what, key, known, self.keys)
    }

    /// The items of this list as nodes.
    pub fn list(&self) -> Result<Vec<Node<'a>>> {
        match self.value {
            Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| self.item(i, v))
                .collect()),
            _ => Err(self.error(format!("must be a list, got {}", self.kind()))),
        }
    }

    /// A string.
    pub fn str(&self) -> Result<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| self.error(format!("must be a string, got {}", self.kind())))
    }

    /// A string with something besides blanks in it.
    pub fn text(&self) -> Result<&'a str> {
        match self.str()? {
            s if s.trim().is_empty() => Err(self.error("must not be empty")),
            s => Ok(s),
        }
    }

    /// A non-empty string; the message names only the kind, never the value (secrets).
    pub fn non_empty_str(&self) -> Result<&'a str> {
        match self.value {
            Value::String(s) if !s.is_empty() => Ok(s),
            _ => Err(self.error(format!("must be a non-empty string, got {}", self.kind()))),
        }
    }

    /// A string, or a number as it is written (CloudFormation makes numbers of some strings).
    pub fn str_or_number(&self) -> Result<String> {
        match self.value {
            Value::Number(n) => Ok(n.to_string()),
            _ => self.str().map(str::to_string),
        }
    }

    /// A string, a number or a boolean, as text (one argument of a command, one variable).
    pub fn scalar(&self) -> Result<String> {
        match self.value {
            Value::Bool(b) => Ok(b.to_string()),
            _ => self.str_or_number(),
        }
    }

    /// A string (one item) or a list of strings.
    pub fn str_or_list(&self) -> Result<Vec<String>> {
        match self.value {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(_) => self
                .list()?
                .iter()
                .map(|n| n.str().map(str::to_string))
                .collect(),
            _ => Err(self.error(format!("must be a list of strings, got {}", self.kind()))),
        }
    }

    /// A whole number, or a string holding one (CloudFormation turns parameter values into
    /// strings, so "600" is as good as 600); `None` when it is neither.
    pub fn whole(&self) -> Option<u64> {
        match self.value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
    }

    /// [`Node::whole`], or an error.
    pub fn whole_number(&self) -> Result<u64> {
        self.whole()
            .ok_or_else(|| self.error(format!("must be a whole number, got {}", self.short())))
    }

    /// A user or group id: [`Node::whole`] below `u32::MAX` (which means "no id" to the
    /// system's tools).
    pub fn id(&self) -> Result<u32> {
        self.whole()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n < u32::MAX)
            .ok_or_else(|| self.error(format!("must be a numeric id, got {}", self.short())))
    }

    /// How cfn-init reads this value as a boolean ([`truthiness`]).
    pub fn truthiness(&self) -> Result<Boolean> {
        truthiness(self.value)
            .ok_or_else(|| self.error(format!("must be true or false, got {}", self.short())))
    }

    /// A boolean of our own block: what cfn-init reads as true is true, an explicit false is
    /// false, anything else an error (the block is ours, so a typo is not silently false).
    pub fn bool(&self) -> Result<bool> {
        match self.truthiness()? {
            Boolean::True => Ok(true),
            Boolean::False => Ok(false),
            Boolean::OtherFalse => {
                Err(self.error(format!("must be true or false, got {}", self.short())))
            }
        }
    }

    /// A boolean of the Init block, read as cfn-init reads it: a value that is false for
    /// cfn-init without looking like it (`"maybe"`) is false here too, with a warning.
    pub fn cfn_bool(&self) -> Result<bool> {
        let b = self.truthiness()?;
        if b == Boolean::OtherFalse {
            tracing::warn!(
                key = %self.path,
                value = %self.short(),
                "read as false, as cfn-init does (true is true, 1, \"true\", \"yes\", \"y\" or \"1\")"
            );
        }
        Ok(b.is_true())
    }
}

/// How cfn-init read a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boolean {
    True,
    /// An explicit false: `false`, `null`, `0`, `""`, `"false"`, `"no"`, `"n"`, `"0"`, `[]`, `{}`.
    False,
    /// Anything else (`"maybe"`, `"on"`, `2`): false for cfn-init too, but probably not meant.
    OtherFalse,
}

impl Boolean {
    pub fn is_true(self) -> bool {
        self == Boolean::True
    }
}

/// cfn-init's `util.interpret_boolean` (cfnbootstrap/util.py:368-386@25fabe91), its one boolean
/// reader (`ignoreErrors`, `enabled`, `ensureRunning`): a falsy value is false; a string is
/// lowered and stripped; true is a member of `_trues = {True, 1, 'true', 'yes', 'y', '1'}` (so
/// `" YES "` and `1.0` too), anything else false. `None` for a non-empty list or mapping, on
/// which cfn-init fails (unhashable).
pub fn truthiness(v: &Value) -> Option<Boolean> {
    Some(match v {
        Value::Null | Value::Bool(false) => Boolean::False,
        Value::Bool(true) => Boolean::True,
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Boolean::True,
            Some(0.0) => Boolean::False,
            _ => Boolean::OtherFalse,
        },
        Value::String(s) => boolean_word(s),
        Value::Array(a) if a.is_empty() => Boolean::False,
        Value::Object(m) if m.is_empty() => Boolean::False,
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// Python's truthiness of a JSON value as `json.loads` gives it (`bool(x)`): what cfn-init tests
/// sections and `content` with, chevron/pystache sections, and cfn-hup's "has a value".
pub fn python_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// [`truthiness`] of a string: lowered and stripped, true if one of `_trues`' strings. Also
/// cfn-hup's reading of its configuration's booleans (`hup::conf`).
pub fn boolean_word(s: &str) -> Boolean {
    match s.to_lowercase().trim() {
        "true" | "yes" | "y" | "1" => Boolean::True,
        "" | "false" | "no" | "n" | "0" => Boolean::False,
        _ => Boolean::OtherFalse,
    }
}

/// An unknown key (`what` = "key", "package manager", ...) at `path`, handled as `keys` says.
fn unknown_key(path: &str, what: &str, key: &str, known: &[&str], keys: Keys) -> Result<()> {
    let hint = closest(key, known.iter().copied())
        .map(|k| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default();
    match keys {
        Keys::Refuse => Err(Error::invalid(
            path,
            format!(
                "unknown {what} '{key}'{hint}; allowed: {}",
                known.join(", ")
            ),
        )),
        Keys::Strict => Err(Error::invalid(
            path,
            format!("unknown {what} '{key}'{hint}; known: {}", known.join(", ")),
        )),
        Keys::Warn => {
            tracing::warn!(
                "{path}: unknown {what} '{key}'{hint}; known: {}. Ignored, as cfn-init ignores it (--strict makes it an error)",
                known.join(", ")
            );
            Ok(())
        }
    }
}

/// A value's kind in an error: "a mapping", "a list", ...
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A value as it appears in an error: short, on one line.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// The allowed name closest to a typo, when it is close enough to be the intended one.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 6))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// An input error about resource `logical_id`'s Metadata read from a local template, with the
/// file:line of its key path where the template text shows it (a template error, so exit code 3
/// as before). Other errors are returned as they are.
pub fn locate(error: Error, template: &Template, logical_id: &str) -> Error {
    match error {
        Error::Invalid { path, message } => match template.metadata_origin(logical_id, &path) {
            Some(at) => Error::Template(TemplateError::Invalid { at, path, message }),
            None => Error::Invalid { path, message },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn the_path_is_carried_through_nesting() {
        let v = json!({"config": {"files": {"/etc/x": {"mode": 5}}, "l": [1, {"k": []}]}});
        let root = Node::root(&v, "AWS::CloudFormation::Init", Keys::Refuse);
        let mode = root
            .required("config")
            .unwrap()
            .required("files")
            .unwrap()
            .entries()
            .unwrap()[0]
            .1
            .required("mode")
            .unwrap();
        assert_eq!(
            err(mode.str()),
            "AWS::CloudFormation::Init.config.files./etc/x.mode: must be a string, got a number"
        );
        let l = root
            .get("config")
            .unwrap()
            .get("l")
            .unwrap()
            .list()
            .unwrap();
        assert_eq!(
            err(l[1].required("k").unwrap().mapping()),
            "AWS::CloudFormation::Init.config.l[1].k: must be a mapping, got a list"
        );
        assert_eq!(
            err(l[1].required("nope")),
            "AWS::CloudFormation::Init.config.l[1].nope: is required"
        );
        assert_eq!(
            err(root.required("config").unwrap().str_or_list()),
            "AWS::CloudFormation::Init.config: must be a list of strings, got a mapping"
        );
    }

    #[test]
    fn typed_accessors() {
        let v = json!({"n": "45", "big": 4294967295u64, "s": "", "b": "  ", "l": ["a", 1],
                       "one": "x", "num": 3, "t": true});
        let r = Node::root(&v, "p", Keys::Refuse);
        let at = |k: &str| r.get(k).unwrap();
        assert_eq!(at("n").whole_number().unwrap(), 45);
        assert_eq!(at("n").id().unwrap(), 45);
        assert_eq!(
            err(at("big").id()),
            "p.big: must be a numeric id, got 4294967295"
        );
        assert_eq!(
            err(at("one").whole_number()),
            "p.one: must be a whole number, got \"x\""
        );
        assert_eq!(err(at("b").text()), "p.b: must not be empty");
        assert_eq!(
            err(at("s").non_empty_str()),
            "p.s: must be a non-empty string, got a string"
        );
        assert_eq!(at("one").str_or_list().unwrap(), ["x"]);
        assert_eq!(
            err(at("l").str_or_list()),
            "p.l[1]: must be a string, got a number"
        );
        assert_eq!(at("num").str_or_number().unwrap(), "3");
        assert_eq!(at("t").scalar().unwrap(), "true");
        assert_eq!(r.opt_str("missing").unwrap(), None);
        assert_eq!(r.opt_str("one").unwrap(), Some("x"));
    }

    #[test]
    fn unknown_keys_suggest_the_closest_and_follow_the_owner() {
        let v = json!({"comands": {}});
        let e = err(Node::root(&v, "I.config", Keys::Refuse).only_keys(&["commands", "files"]));
        assert_eq!(
            e,
            "I.config.comands: unknown key 'comands' (did you mean 'commands'?); allowed: commands, files"
        );
        let e = err(Node::root(&v, "I.config", Keys::Strict).only_keys(&["commands", "files"]));
        assert!(
            e.ends_with("(did you mean 'commands'?); known: commands, files"),
            "{e}"
        );
        assert!(Node::root(&v, "I.config", Keys::Warn)
            .only_keys(&["commands"])
            .is_ok());
        let e = err(Node::root(&v, "p", Keys::Strict).only_keys_named("package manager", &["yum"]));
        assert_eq!(
            e,
            "p.comands: unknown package manager 'comands'; known: yum"
        );
        assert_eq!(closest("Banana", ["Cluster"].into_iter()), None);
    }

    /// The table of cfnbootstrap/util.py:368-386@25fabe91.
    #[test]
    fn truthiness_is_cfn_inits() {
        use Boolean::*;
        for (v, want) in [
            (json!(true), True),
            (json!(1), True),
            (json!(1.0), True),
            (json!("true"), True),
            (json!(" YES "), True),
            (json!("y"), True),
            (json!("1"), True),
            (json!(false), False),
            (json!(null), False),
            (json!(0), False),
            (json!(""), False),
            (json!("No"), False),
            (json!([]), False),
            (json!({}), False),
            (json!("maybe"), OtherFalse),
            (json!("on"), OtherFalse),
            (json!(2), OtherFalse),
        ] {
            assert_eq!(truthiness(&v), Some(want), "{v}");
            let n = Node::root(&v, "p", Keys::Warn);
            assert_eq!(n.cfn_bool().unwrap(), want == True, "{v}");
            assert_eq!(n.bool().is_ok(), want != OtherFalse, "{v}");
        }
        for v in [json!(["x"]), json!({"a": 1})] {
            let e = err(Node::root(&v, "p", Keys::Warn).cfn_bool());
            assert!(e.starts_with("p: must be true or false"), "{e}");
        }
    }

    #[test]
    fn errors_in_a_local_template_say_file_and_line() {
        let text = "\
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Metadata:
      ecs-bootstrap:
        Cluster: c
        Timeout: ten
      AWS::CloudFormation::Init:
        config:
          files:
            /etc/x.conf:
              mode: 5
";
        let t = Template::parse(text, "t.yaml").unwrap();
        let at = |path: &str| locate(Error::invalid(path, "bad"), &t, "LC").to_string();
        assert_eq!(
            at("ecs-bootstrap.Timeout"),
            "t.yaml:7: ecs-bootstrap.Timeout: bad"
        );
        assert_eq!(
            at("AWS::CloudFormation::Init.config.files./etc/x.conf.mode"),
            "t.yaml:12: AWS::CloudFormation::Init.config.files./etc/x.conf.mode: bad"
        );
        // A path outside the Metadata's keys is not given a line that is not its own.
        assert_eq!(at("ecs-bootstrap-x.y"), "ecs-bootstrap-x.y: bad");
        assert_eq!(
            at("AWS::CloudFormation::Authentication"),
            "AWS::CloudFormation::Authentication: bad"
        );
        assert_eq!(locate(Error::Usage("u".into()), &t, "LC").exit_code(), 2);
        assert_eq!(
            locate(Error::invalid("ecs-bootstrap", "x"), &t, "LC").exit_code(),
            3
        );
    }
}
