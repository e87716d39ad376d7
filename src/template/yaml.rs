//! YAML text -> JSON value, rewriting CloudFormation short tags (`!Ref X`) to the long
//! forms (`{"Ref": "X"}`) so the resolver only ever sees one syntax.

use super::{Origin, TemplateError};
use serde_json::{Map, Number, Value};
use serde_yaml_ng::Value as Yaml;

/// Short tags and the key of the long form they stand for.
const TAGS: &[(&str, &str)] = &[
    ("Ref", "Ref"),
    ("Condition", "Condition"),
    ("Sub", "Fn::Sub"),
    ("GetAtt", "Fn::GetAtt"),
    ("Join", "Fn::Join"),
    ("Select", "Fn::Select"),
    ("Split", "Fn::Split"),
    ("Base64", "Fn::Base64"),
    ("GetAZs", "Fn::GetAZs"),
    ("ImportValue", "Fn::ImportValue"),
    ("If", "Fn::If"),
    ("Equals", "Fn::Equals"),
    ("And", "Fn::And"),
    ("Or", "Fn::Or"),
    ("Not", "Fn::Not"),
    ("FindInMap", "Fn::FindInMap"),
    ("Cidr", "Fn::Cidr"),
    ("Length", "Fn::Length"),
    ("ToJsonString", "Fn::ToJsonString"),
    ("Transform", "Fn::Transform"),
];

pub(super) fn parse(text: &str, file: &str) -> Result<Value, TemplateError> {
    let doc: Yaml = super::yaml_budget::from_str(text).map_err(|e| {
        let location = e.location();
        TemplateError::Syntax {
            file: file.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: format!("invalid YAML: {e}"),
        }
    })?;
    Converter { text, file }.convert(&doc, "")
}

struct Converter<'a> {
    /// Kept to find an unknown tag's line: the parsed value has no positions.
    text: &'a str,
    file: &'a str,
}

impl Converter<'_> {
    // Recursion is bounded by serde_yaml_ng's own nesting limit (128).
    fn convert(&self, value: &Yaml, path: &str) -> Result<Value, TemplateError> {
        Ok(match value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Number(n) => Value::Number(self.number(n, path)?),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Sequence(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.convert(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Mapping(mapping) => {
                let mut out = Map::with_capacity(mapping.len());
                for (key, item) in mapping {
                    let key = self.key(key, path)?;
                    let item_path = join(path, &key);
                    let converted = self.convert(item, &item_path)?;
                    // `1:` and `"1":` are distinct YAML keys but the same JSON key.
                    if out.insert(key, converted).is_some() {
                        return Err(self.invalid(&item_path, "duplicate key"));
                    }
                }
                Value::Object(out)
            }
            Yaml::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                let Some(&(_, long)) = TAGS.iter().find(|(short, _)| *short == name) else {
                    let (line, column) = find_tag(self.text, name).unzip();
                    return Err(TemplateError::UnknownTag {
                        file: self.file.to_string(),
                        line,
                        column,
                        path: display_path(path),
                        tag: name.to_string(),
                    });
                };
                let inner_path = join(path, long);
                let inner = match (long, &tagged.value) {
                    // `!GetAtt Res.Attr.Sub` splits at the first dot only: the attribute
                    // name itself may contain dots (e.g. `Endpoint.Address`).
                    ("Fn::GetAtt", Yaml::String(s)) => match s.split_once('.') {
                        Some((res, attr)) => Value::Array(vec![
                            Value::String(res.to_string()),
                            Value::String(attr.to_string()),
                        ]),
                        None => {
                            return Err(self.invalid(
                                &inner_path,
                                &format!("!GetAtt needs LogicalId.Attribute, got '{s}'"),
                            ))
                        }
                    },
                    (_, v) => self.convert(v, &inner_path)?,
                };
                let mut map = Map::with_capacity(1);
                map.insert(long.to_string(), inner);
                Value::Object(map)
            }
        })
    }

    fn key(&self, key: &Yaml, path: &str) -> Result<String, TemplateError> {
        match key {
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Bool(b) => Ok(b.to_string()),
            Yaml::Number(n) => Ok(n.to_string()),
            Yaml::Null => Ok("null".to_string()),
            _ => Err(self.invalid(path, "mapping keys must be scalars")),
        }
    }

    fn number(&self, n: &serde_yaml_ng::Number, path: &str) -> Result<Number, TemplateError> {
        if let Some(u) = n.as_u64() {
            Ok(Number::from(u))
        } else if let Some(i) = n.as_i64() {
            Ok(Number::from(i))
        } else {
            n.as_f64()
                .and_then(Number::from_f64)
                .ok_or_else(|| self.invalid(path, &format!("{n} cannot be represented in JSON")))
        }
    }

    fn invalid(&self, path: &str, message: &str) -> TemplateError {
        TemplateError::Invalid {
            at: Origin {
                file: self.file.to_string(),
                line: None,
            },
            path: display_path(path),
            message: message.to_string(),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "(top level)".to_string()
    } else {
        path.to_string()
    }
}

/// 1-based line and column of the first `!name` in `text` that is the whole tag (not a
/// prefix of a longer one). Best effort: the first occurrence may not be the one at fault.
fn find_tag(text: &str, name: &str) -> Option<(usize, usize)> {
    let needle = format!("!{name}");
    for (line_no, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(&needle) {
            let start = from + pos;
            let end = start + needle.len();
            let whole = line[end..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.')));
            if whole {
                return Some((line_no + 1, line[..start].chars().count() + 1));
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        parse(text, "t.yaml").unwrap()
    }

    #[test]
    fn every_short_tag_becomes_its_long_form() {
        let v = yaml(
            "
a: !Ref P
b: !Sub 'x-${P}'
c: !Sub ['${A}', {A: b}]
d: !GetAtt R.Arn
e: !GetAtt R.Endpoint.Address
f: !GetAtt [R, Arn]
g: !Join [',', [a, b]]
h: !Select [0, [a]]
i: !Split [',', 'a,b']
j: !Base64 x
k: !GetAZs ''
l: !ImportValue exp
m: !If [C, a, b]
n: !Equals [a, b]
o: !And [!Condition C, !Condition D]
p: !Or [!Condition C, !Condition D]
q: !Not [!Condition C]
r: !FindInMap [M, a, b]
s: !Cidr [10.0.0.0/16, 2, 8]
t: !Length [a]
u: !ToJsonString {a: 1}
v: !Transform {Name: X}
",
        );
        assert_eq!(
            v,
            json!({
                "a": {"Ref": "P"},
                "b": {"Fn::Sub": "x-${P}"},
                "c": {"Fn::Sub": ["${A}", {"A": "b"}]},
                "d": {"Fn::GetAtt": ["R", "Arn"]},
                "e": {"Fn::GetAtt": ["R", "Endpoint.Address"]},
                "f": {"Fn::GetAtt": ["R", "Arn"]},
                "g": {"Fn::Join": [",", ["a", "b"]]},
                "h": {"Fn::Select": [0, ["a"]]},
                "i": {"Fn::Split": [",", "a,b"]},
                "j": {"Fn::Base64": "x"},
                "k": {"Fn::GetAZs": ""},
                "l": {"Fn::ImportValue": "exp"},
                "m": {"Fn::If": ["C", "a", "b"]},
                "n": {"Fn::Equals": ["a", "b"]},
                "o": {"Fn::And": [{"Condition": "C"}, {"Condition": "D"}]},
                "p": {"Fn::Or": [{"Condition": "C"}, {"Condition": "D"}]},
                "q": {"Fn::Not": [{"Condition": "C"}]},
                "r": {"Fn::FindInMap": ["M", "a", "b"]},
                "s": {"Fn::Cidr": ["10.0.0.0/16", 2, 8]},
                "t": {"Fn::Length": ["a"]},
                "u": {"Fn::ToJsonString": {"a": 1}},
                "v": {"Fn::Transform": {"Name": "X"}},
            })
        );
    }

    #[test]
    fn block_style_tags_and_nesting() {
        let v = yaml("a: !Join\n  - ''\n  - - !Ref P\n    - !Sub '${AWS::Region}'\n");
        assert_eq!(
            v,
            json!({"a": {"Fn::Join": ["", [{"Ref": "P"}, {"Fn::Sub": "${AWS::Region}"}]]}})
        );
    }

    #[test]
    fn key_order_is_preserved() {
        let v = yaml("z: 1\na: 2\nm: 3\n");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn scalars_keep_their_types() {
        let v = yaml("s: '1'\nn: 1\nf: 1.5\nb: true\nz: ~\no: '0755'\nk: yes\n");
        assert_eq!(
            v,
            json!({"s": "1", "n": 1, "f": 1.5, "b": true, "z": null, "o": "0755", "k": "yes"})
        );
    }

    #[test]
    fn unknown_tag_names_tag_line_and_path() {
        let err = parse("A:\n  B:\n    - x\n    - !Reff Foo\n", "t.yaml").unwrap_err();
        let msg = err.to_string();
        assert_eq!(msg, "t.yaml:4:7: A.B[1]: unknown YAML tag !Reff");
    }

    #[test]
    fn unknown_tag_line_skips_longer_tags_with_same_prefix() {
        assert_eq!(find_tag("a: !Reff\nb: !Ref x\n", "Ref"), Some((2, 4)));
        assert_eq!(find_tag("a: !Refx", "Ref"), None);
    }

    #[test]
    fn syntax_error_carries_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n", "t.yaml").unwrap_err();
        match &err {
            TemplateError::Syntax { line, column, .. } => {
                assert_eq!(*line, Some(3));
                assert!(column.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().starts_with("t.yaml:3:"), "{err}");
    }

    #[test]
    fn getatt_scalar_without_dot_is_an_error() {
        let err = parse("a: !GetAtt Foo\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("a.Fn::GetAtt"), "{err}");
    }

    #[test]
    fn non_finite_numbers_and_complex_keys_are_errors() {
        assert!(parse("a: .inf\n", "t.yaml").is_err());
        assert!(parse("? [a]\n: 1\n", "t.yaml").is_err());
    }

    #[test]
    fn colliding_keys_after_stringification() {
        let err = parse("1: a\n'1': b\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse(&text, "t.yaml"),
            Err(TemplateError::Syntax { .. })
        ));
    }
}
