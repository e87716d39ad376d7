//! Mustache for `files.context` as chevron 0.14.0 renders it: what cfn-init 2.0 uses when chevron
//! can be imported (file_tool.py:231-251@25fabe91), as on Amazon Linux 2023, the current
//! ECS-optimized AMI. A line-by-line port of chevron's `tokenizer.py` and `renderer.py`, quirks
//! included, over the values cfn-init parsed from JSON:
//!
//! - `{{x}}` escapes only `&`, `<`, `>` and `"` (not `'`); `{{{x}}}` and `{{&x}}` are raw.
//! - A name that is missing, `null`, `""`, `[]` or `{}` renders as nothing; `false` as `False`,
//!   `0` as `0`; other values as Python's `str()` (`True`, `1.5`, `['a', 'b']`, `{'k': 1}`).
//! - Dotted names walk mappings and list indexes (`a.0`); a name not found in the innermost
//!   scope is looked up in the enclosing ones, the whole dotted path each time.
//! - Sections iterate lists, enter anything else that is truthy; inverted sections render for
//!   Python-falsy values. Standalone tag lines are dropped as chevron drops them (only spaces are
//!   trimmed before the tag).
//! - Partials (`{{>name}}`) render as nothing: chevron would read `./name.mustache` from
//!   cfn-init's working directory, and a template never reads a file here (a deliberate
//!   difference).
//!
//! Errors are chevron's: an unclosed tag, a section closed out of order or never closed.

use serde_json::Value;

use super::mustache::{python_str, truthy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Literal,
    Variable,
    NoEscape,
    /// `{{{x}` not followed by `}` (or with other delimiters): chevron yields it and renders
    /// nothing for it.
    NoEscapeUnclosed,
    Section,
    Inverted,
    End,
    Partial,
    Comment,
    SetDelimiter,
}

type Token = (Kind, String);

/// Python's `str.isspace()` (false for "").
fn is_space(s: &str) -> bool {
    !s.is_empty() && s.chars().all(char::is_whitespace)
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut template = src;
    let mut is_standalone = true;
    let mut open_sections: Vec<String> = Vec::new();
    let (mut l_del, mut r_del) = ("{{".to_string(), "}}".to_string());
    let mut line = 1;
    while !template.is_empty() {
        // grab_literal
        let found = (!l_del.is_empty())
            .then(|| template.find(l_del.as_str()))
            .flatten();
        let (literal, rest) = match found {
            Some(i) => (&template[..i], &template[i + l_del.len()..]),
            None => (template, ""),
        };
        line += literal.matches('\n').count();
        template = rest;
        if template.is_empty() {
            out.push((Kind::Literal, literal.to_string()));
            break;
        }
        // l_sa_check
        is_standalone = if literal.contains('\n') || is_standalone {
            let padding = literal.rsplit('\n').next().unwrap_or("");
            is_space(padding) || padding.is_empty()
        } else {
            false
        };
        // parse_tag
        let close = (!r_del.is_empty())
            .then(|| template.find(r_del.as_str()))
            .flatten()
            .ok_or_else(|| format!("unclosed tag at line {line}"))?;
        let mut tag = &template[..close];
        template = &template[close + r_del.len()..];
        let first = tag
            .chars()
            .next()
            .ok_or_else(|| format!("empty tag at line {line}"))?;
        let mut kind = match first {
            '!' => Kind::Comment,
            '#' => Kind::Section,
            '^' => Kind::Inverted,
            '/' => Kind::End,
            '>' => Kind::Partial,
            '=' => Kind::SetDelimiter,
            '{' => Kind::NoEscapeUnclosed,
            '&' => Kind::NoEscape,
            _ => Kind::Variable,
        };
        if kind != Kind::Variable {
            tag = &tag[first.len_utf8()..];
        }
        if kind == Kind::SetDelimiter {
            tag = tag
                .strip_suffix('=')
                .ok_or_else(|| format!("unclosed set delimiter tag at line {line}"))?;
        } else if kind == Kind::NoEscapeUnclosed
            && l_del == "{{"
            && r_del == "}}"
            && template.starts_with('}')
        {
            template = &template[1..];
            kind = Kind::NoEscape;
        }
        let key = tag.trim().to_string();
        match kind {
            Kind::SetDelimiter => {
                let dels: Vec<&str> = key.split(' ').collect();
                l_del = dels[0].to_string();
                r_del = dels[dels.len() - 1].to_string();
            }
            Kind::Section | Kind::Inverted => open_sections.push(key.clone()),
            Kind::End => match open_sections.pop() {
                None => {
                    return Err(format!(
                        "trying to close tag \"{key}\", which was not opened (line {line})"
                    ))
                }
                Some(last) if last != key => {
                    return Err(format!(
                        "trying to close tag \"{key}\", but the last open tag is \"{last}\" (line {line})"
                    ))
                }
                Some(_) => {}
            },
            _ => {}
        }
        // r_sa_check
        is_standalone = is_standalone && !matches!(kind, Kind::Variable | Kind::NoEscape) && {
            let first_line = template.split('\n').next().unwrap_or("");
            is_space(first_line) || first_line.is_empty()
        };
        let mut literal = literal;
        if is_standalone {
            if let Some((_, after)) = template.split_once('\n') {
                template = after;
            }
            if kind != Kind::Partial {
                literal = literal.trim_end_matches(' ');
            }
        }
        if !literal.is_empty() {
            out.push((Kind::Literal, literal.to_string()));
        }
        if kind != Kind::Comment {
            out.push((kind, key));
        }
    }
    if let Some(open) = open_sections.last() {
        return Err(format!("the tag \"{open}\" was never closed"));
    }
    Ok(out)
}

/// A scope or a looked-up value: a JSON value, a boolean chevron pushed itself (inverted and
/// skipped sections), or the `''` its `_get_key` returns for a missing or empty value.
#[derive(Debug, Clone, Copy)]
enum Item<'v> {
    Json(&'v Value),
    Bool(bool),
    Empty,
}

impl Item<'_> {
    fn truthy(&self) -> bool {
        match self {
            Item::Json(v) => truthy(v),
            Item::Bool(b) => *b,
            Item::Empty => false,
        }
    }

    fn is_true(&self) -> bool {
        matches!(self, Item::Bool(true) | Item::Json(Value::Bool(true)))
    }

    fn text(&self) -> String {
        match self {
            Item::Json(v) => python_str(v),
            Item::Bool(true) => "True".into(),
            Item::Bool(false) => "False".into(),
            Item::Empty => String::new(),
        }
    }
}

/// Python's `int(s)` for a list index (optional sign, digits, `_` between digits).
fn python_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// chevron's `_get_key`.
fn get_key<'v>(key: &str, scopes: &[Item<'v>]) -> Item<'v> {
    if key == "." {
        return scopes[0];
    }
    'scopes: for scope in scopes {
        let mut cur = *scope;
        for child in key.split('.') {
            cur = match cur {
                Item::Json(Value::Object(m)) => match m.get(child) {
                    Some(v) => Item::Json(v),
                    None => continue 'scopes,
                },
                Item::Json(Value::Array(a)) => {
                    let Some(i) = python_int(child) else {
                        continue 'scopes;
                    };
                    let i = if i < 0 { a.len() as i64 + i } else { i };
                    match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                        Some(v) => Item::Json(v),
                        None => continue 'scopes,
                    }
                }
                // Strings, numbers, booleans, None: no such key or index here.
                _ => continue 'scopes,
            };
        }
        return match cur {
            // `scope in (0, False)` returns it as it is.
            Item::Json(v @ (Value::Bool(false) | Value::Number(_))) if !truthy(v) => cur,
            Item::Bool(false) => cur,
            c if c.truthy() => c,
            _ => Item::Empty,
        };
    }
    Item::Empty
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

const MAX_DEPTH: usize = 100;

fn render_tokens<'v>(
    tokens: &[Token],
    mut scopes: Vec<Item<'v>>,
    depth: usize,
    out: &mut String,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("sections nested deeper than {MAX_DEPTH}"));
    }
    let mut i = 0;
    while i < tokens.len() {
        // A small template with sections over lists can multiply without bound (issue 8):
        // every step checks the output's size, so nested loops stop early.
        if out.len() > super::mustache::MAX_OUTPUT {
            return Err(too_large());
        }
        let (kind, key) = &tokens[i];
        i += 1;
        let current = scopes[0];
        if *kind == Kind::End {
            scopes.remove(0);
        } else if !current.truthy() && scopes.len() != 1 {
            if matches!(kind, Kind::Section | Kind::Inverted) {
                scopes.insert(0, Item::Bool(false));
            }
        } else {
            match kind {
                Kind::Literal => out.push_str(key),
                Kind::Variable => {
                    let mut thing = get_key(key, &scopes);
                    if thing.is_true() && key == "." {
                        // chevron: a boolean pushed by an inverted section stands for the
                        // scope under it.
                        thing = scopes.get(1).copied().unwrap_or(thing);
                    }
                    escape_into(&thing.text(), out);
                }
                Kind::NoEscape => out.push_str(&get_key(key, &scopes).text()),
                Kind::Section => {
                    let scope = get_key(key, &scopes);
                    if let Item::Json(Value::Array(items)) = scope {
                        let start = i;
                        let mut same_key = 0i32;
                        let mut end = tokens.len();
                        while i < tokens.len() {
                            let t = &tokens[i];
                            i += 1;
                            if t.0 == Kind::Section && t.1 == *key {
                                same_key += 1;
                            }
                            if t.0 == Kind::End && t.1 == *key {
                                same_key -= 1;
                                if same_key < 0 {
                                    end = i - 1;
                                    break;
                                }
                            }
                        }
                        for item in items {
                            let mut inner = Vec::with_capacity(scopes.len() + 1);
                            inner.push(Item::Json(item));
                            inner.extend_from_slice(&scopes);
                            render_tokens(&tokens[start..end], inner, depth + 1, out)?;
                        }
                    } else {
                        scopes.insert(0, scope);
                    }
                }
                Kind::Inverted => {
                    let scope = get_key(key, &scopes);
                    scopes.insert(0, Item::Bool(!scope.truthy()));
                }
                // Partials: nothing (see the module comment); set-delimiter and unclosed `{{{`
                // tags render nothing in chevron either.
                _ => {}
            }
        }
        if scopes.is_empty() {
            return Err("a section was closed more often than opened".into());
        }
    }
    Ok(())
}

/// Renders `template` with `ctx` as chevron 0.14.0's `render(template, ctx)` does.
pub fn render(template: &str, ctx: &Value) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut out = String::with_capacity(template.len());
    render_tokens(&tokens, vec![Item::Json(ctx)], 0, &mut out)?;
    if out.len() > super::mustache::MAX_OUTPUT {
        return Err(too_large());
    }
    Ok(out)
}

/// The same words as the pystache renderer's budget error (src/init/mustache.rs).
fn too_large() -> String {
    format!(
        "renders to more than {} MiB (sections repeated over lists?)",
        super::mustache::MAX_OUTPUT >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected strings from chevron 0.14.0 (`chevron.render(template, ctx)`, CPython 3.11).
    #[test]
    fn fan_out_stops_at_the_budget() {
        let template = "{{#l}}".repeat(8) + "0123456789abcdef" + &"{{/l}}".repeat(8);
        let ctx = json!({"l": (0..40).collect::<Vec<_>>()});
        let e = render(&template, &ctx).unwrap_err();
        assert!(e.contains("renders to more than"), "{e}");
    }

    #[test]
    fn renders_as_chevron() {
        let ctx = json!({
            "a": "<'&\">", "n": null, "f": false, "z": 0, "e": [], "d": {}, "s": "",
            "l": ["x", "y"], "fl": 1.5, "t": true, "m": {"k": 1, "in": {"v": "deep"}},
            "objs": [{"name": "one"}, {"name": "two"}], "small": 0.00001
        });
        let cases = [
            ("{{a}}|{{{a}}}|{{&a}}", "&lt;'&amp;&quot;&gt;|<'&\">|<'&\">"),
            (
                "[{{n}}][{{f}}][{{z}}][{{e}}][{{d}}][{{s}}][{{missing}}]",
                "[][False][0][][][][]",
            ),
            (
                "{{l}} {{fl}} {{t}} {{m}} {{small}}",
                "['x', 'y'] 1.5 True {'k': 1, 'in': {'v': 'deep'}} 1e-05",
            ),
            ("{{#l}}<{{.}}>{{/l}}", "<x><y>"),
            (
                "{{#objs}}{{name}}:{{a}};{{/objs}}",
                "one:&lt;'&amp;&quot;&gt;;two:&lt;'&amp;&quot;&gt;;",
            ),
            (
                "{{#m}}{{k}}{{in.v}}{{/m}}{{m.in.v}}{{l.1}}{{l.-1}}",
                "1deepdeepyy",
            ),
            (
                "{{^e}}empty{{/e}}{{^n}}none{{/n}}{{^z}}zero{{/z}}{{^l}}no{{/l}}",
                "emptynonezero",
            ),
            ("{{#t}}yes{{/t}}{{#f}}no{{/f}}{{#n}}{{a}}{{/n}}", "yes"),
            ("a\n  {{#t}}  \nb\n  {{/t}}\nc\n", "a\nb\nc\n"),
            ("a\n\t{{#t}}\nb\n{{/t}}\n", "a\n\tb\n"),
            ("x {{! comment }} y\n{{! standalone }}\nz", "x  y\nz"),
            ("{{=<% %>=}}<% a %> {{a}}", "&lt;'&amp;&quot;&gt; {{a}}"),
            ("[{{>part}}]", "[]"),
            ("{{#l}}{{#l}}{{.}}{{/l}}|{{/l}}", "xy|xy|"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &ctx).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn broken_templates_are_errors() {
        for t in [
            "{{a",
            "{{#a}}x",
            "{{/a}}",
            "{{#a}}{{/b}}",
            "{{=<% %>}}",
            "{{}}",
        ] {
            assert!(render(t, &json!({})).is_err(), "{t}");
        }
    }
}
