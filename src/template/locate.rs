//! Best-effort line numbers for error key paths. Parsed values carry no positions, so the
//! path's keys are looked up in the text by indentation, which fits block-style YAML and
//! pretty-printed JSON. The search stops at a list index, a key it cannot find (flow
//! style, short tags) or anything ambiguous, and answers with the deepest key it found:
//! a line that encloses the fault, never an unrelated one.

use serde_json::{Map, Value};

/// 1-based line of the deepest key of `path` found in `text`.
pub(super) fn line_of(text: &str, root: &Map<String, Value>, path: &str) -> Option<u32> {
    find_keys(text, &split_path(root, path)).and_then(|line| u32::try_from(line).ok())
}

/// Splits a dotted error path into keys with the document's help: keys may themselves
/// contain dots (`/etc/ecs/ecs.config`). Stops at the first list index.
fn split_path<'a>(root: &'a Map<String, Value>, mut path: &str) -> Vec<&'a str> {
    let mut keys = Vec::new();
    let mut node = root;
    while let Some(key) = node
        .keys()
        .filter(|k| {
            path.strip_prefix(k.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
        .max_by_key(|k| k.len())
    {
        keys.push(key.as_str());
        match (path[key.len()..].strip_prefix('.'), node.get(key)) {
            (Some(rest), Some(Value::Object(child))) => {
                path = rest;
                node = child;
            }
            _ => break,
        }
    }
    keys
}

fn find_keys(text: &str, keys: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    for key in keys {
        // Direct children share the indentation of the block's first key.
        let mut child_indent = None;
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let content = line.trim_start();
            let indent = line.len() - content.len();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            let Some(candidate) = key_of(content) else {
                continue;
            };
            if indent != *child_indent.get_or_insert(indent) {
                continue;
            }
            if candidate == *key {
                hit = Some((i, indent));
                break;
            }
        }
        let Some((i, indent)) = hit else { break };
        found = Some(i + 1);
        start = i + 1;
        parent_indent = Some(indent);
    }
    found
}

/// The mapping key a line starts with: `key:`, `"key":` or `'key':`.
fn key_of(content: &str) -> Option<&str> {
    let (key, rest) = match content.chars().next()? {
        quote @ ('"' | '\'') => {
            let body = &content[1..];
            let end = body.find(quote)?;
            (&body[..end], body[end + 1..].trim_start())
        }
        '-' | '[' | ']' | '{' | '}' | '!' | '&' | '*' | '|' | '>' | '?' | '%' => return None,
        _ => {
            // A plain key ends at the first ": " or at a ':' ending the line, so
            // `AWS::CloudFormation::Init:` keeps its double colons.
            let end = content
                .find(": ")
                .or_else(|| content.strip_suffix(':').map(str::len))?;
            (&content[..end], &content[end..])
        }
    };
    rest.starts_with(':').then_some(key.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(text: &str, path: &str) -> Option<u32> {
        let root = super::super::Template::parse(text, "t").unwrap().root;
        line_of(text, &root, path)
    }

    const YAML: &str = "\
AWSTemplateFormatVersion: '2010-09-09'
# Resources: not this one
Parameters:
  Type: {Type: String}
Resources:
  LC:
    Type: X
    Metadata:
      AWS::CloudFormation::Init:
        config:
          files:
            /etc/ecs/ecs.config:
              content: |
                Cluster: not a key
              mode: '000644'
      'ecs-bootstrap':
        Cluster: !Ref Foo
        List:
          - a: 1
";

    #[test]
    fn yaml_paths() {
        assert_eq!(line(YAML, "Resources.LC.Type"), Some(7));
        assert_eq!(
            line(YAML, "Resources.LC.Metadata.ecs-bootstrap.Cluster"),
            Some(17)
        );
        assert_eq!(
            line(YAML, "Resources.LC.Metadata.AWS::CloudFormation::Init.config.files./etc/ecs/ecs.config.mode"),
            Some(15)
        );
        // Stops at short tags, list items and unknown keys, at the enclosing key.
        assert_eq!(
            line(YAML, "Resources.LC.Metadata.ecs-bootstrap.Cluster.Ref"),
            Some(17)
        );
        assert_eq!(
            line(YAML, "Resources.LC.Metadata.ecs-bootstrap.List[0].a"),
            Some(18)
        );
        assert_eq!(line(YAML, "Resources.Nope"), Some(5));
        assert_eq!(line(YAML, "(fragment).x"), None);
    }

    #[test]
    fn json_paths() {
        let text = "{\n  \"Resources\": {\n    \"A\": {\n      \"Type\": \"X\",\n      \"Metadata\": {\"k\": {\"Ref\": \"B\"}}\n    }\n  }\n}\n";
        assert_eq!(line(text, "Resources.A.Type"), Some(4));
        assert_eq!(line(text, "Resources.A.Metadata.k"), Some(5));
    }

    #[test]
    fn keys_with_dots_are_split_by_the_document() {
        let root = json!({"a.b": {"c": 1}, "a": {"b": 2}});
        assert_eq!(split_path(root.as_object().unwrap(), "a.b.c"), ["a.b", "c"]);
    }

    #[test]
    fn key_forms() {
        assert_eq!(key_of("key: value"), Some("key"));
        assert_eq!(key_of("key:"), Some("key"));
        assert_eq!(key_of("\"k:ey\" : 1"), Some("k:ey"));
        assert_eq!(key_of("'a b': 1"), Some("a b"));
        assert_eq!(
            key_of("AWS::CloudFormation::Init:"),
            Some("AWS::CloudFormation::Init")
        );
        assert_eq!(key_of("command: echo a:b"), Some("command"));
        assert_eq!(key_of("- a: 1"), None);
        assert_eq!(key_of("just text"), None);
        assert_eq!(key_of("\"unterminated"), None);
    }
}
