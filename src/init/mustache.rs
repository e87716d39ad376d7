//! Mustache for `files.context`. The default renders as chevron ([`super::chevron`]), what
//! cfn-init 2.0 uses on Amazon Linux 2023; `--mustache pystache` renders as cfn-init's pystache
//! (Amazon Linux 2, past its end of support), as described below.
//!
//! pystache (what cfn-init uses) prints values with Python's `str()`: `true` is `True`, `null`
//! is `None`, `1.5` is `1.5`; `{{x}}` is escaped with Python's `html.escape(x, quote=True)`
//! (`&`, `<`, `>`, `"` and `'` as `&#x27;`); `{{{x}}}` and `{{&x}}` are raw; a missing name is
//! empty; sections iterate lists, enter mappings and render once for any other truthy value
//! (Python truthiness: `false`, `null`, `0`, `""`, `[]` and `{}` are false); standalone tag
//! lines (a section, comment or delimiter tag alone on its line) leave no blank line.
//! Partials (`{{>name}}`) render as nothing, as pystache does without a partials loader: a
//! template never reads another file. Lists and mappings in a variable tag print as Python
//! prints them (`['x', 'y']`, `{'k': 1}`).
//!
//! Errors are plain messages; the caller names the key.

use serde_json::Value;

const MAX_DEPTH: usize = 100;

/// Cap on a rendered file: sections nest and iterate, so a 2 KB template over a few lists
/// fans out to gigabytes (issue 8). Far above any real configuration file.
pub const MAX_OUTPUT: usize = 32 << 20;

#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Var {
        name: String,
        escape: bool,
    },
    Section {
        name: String,
        inverted: bool,
        children: Vec<Token>,
    },
}

/// Which mustache cfn-init would have rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Flavour {
    /// chevron 0.14.0: cfn-init on Amazon Linux 2023 (and any Python >= 3.6 install).
    #[default]
    Chevron,
    /// pystache: cfn-init on Amazon Linux 2.
    Pystache,
}

static FLAVOUR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Chooses the renderer for the rest of the process (the `--mustache` flag).
pub fn set_flavour(f: Flavour) {
    FLAVOUR.store(f as u8, std::sync::atomic::Ordering::Relaxed);
}

fn flavour() -> Flavour {
    if FLAVOUR.load(std::sync::atomic::Ordering::Relaxed) == Flavour::Pystache as u8 {
        Flavour::Pystache
    } else {
        Flavour::Chevron
    }
}

/// Renders `template` with `ctx` (the file's `context` mapping) with the chosen flavour.
pub fn render(template: &str, ctx: &Value) -> Result<String, String> {
    match flavour() {
        Flavour::Chevron => super::chevron::render(template, ctx),
        Flavour::Pystache => render_pystache(template, ctx),
    }
}

/// Renders `template` with `ctx` as pystache does.
pub fn render_pystache(template: &str, ctx: &Value) -> Result<String, String> {
    let tokens = parse(template)?;
    let mut out = String::with_capacity(template.len());
    let mut stack = vec![ctx];
    render_tokens(&tokens, &mut stack, &mut out);
    if out.len() > MAX_OUTPUT {
        return Err(format!(
            "renders to more than {} MiB (sections repeated over lists?)",
            MAX_OUTPUT >> 20
        ));
    }
    Ok(out)
}

/// A section being parsed: its name and whether it is inverted (None for the template itself),
/// and the tokens collected so far.
type Frame = (Option<(String, bool)>, Vec<Token>);

/// A tag found in the source: its kind, its content, and where it starts and ends.
struct Tag<'a> {
    sigil: Option<char>,
    body: &'a str,
    start: usize,
    end: usize,
}

fn parse(src: &str) -> Result<Vec<Token>, String> {
    let mut open = "{{".to_string();
    let mut close = "}}".to_string();
    let mut frames: Vec<Frame> = vec![(None, Vec::new())];
    let mut pos = 0;
    while pos < src.len() {
        let Some(rel) = src[pos..].find(open.as_str()) else {
            push_text(&mut frames, &src[pos..]);
            break;
        };
        let start = pos + rel;
        let tag = read_tag(src, start, &open, &close)?;
        let alone = if matches!(tag.sigil, Some('#' | '^' | '/' | '!' | '=' | '>')) {
            standalone(src, start, tag.end)
        } else {
            None
        };
        let (text_end, next) = match alone {
            Some((line_start, after)) => (line_start, after),
            None => (start, tag.end),
        };
        push_text(&mut frames, &src[pos..text_end]);
        pos = next;
        let name = tag.body.trim();
        match tag.sigil {
            Some('!') => {}
            Some('>') => {
                tracing::warn!(
                    partial = name,
                    "mustache partials are not supported: rendered as nothing (as cfn-init does)"
                );
            }
            Some('=') => {
                let inner = tag.body.strip_suffix('=').unwrap_or(tag.body).trim();
                let mut parts = inner.split_whitespace();
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(o), Some(c), None) => {
                        open = o.to_string();
                        close = c.to_string();
                    }
                    _ => {
                        return Err(format!(
                            "bad delimiter change '{}' at byte {}",
                            &src[tag.start..tag.end],
                            tag.start
                        ))
                    }
                }
            }
            Some(s @ ('#' | '^')) => {
                check_name(name, tag.start)?;
                // Rendering recurses per level: a hostile template must not exhaust the stack.
                if frames.len() > MAX_DEPTH {
                    return Err(format!(
                        "sections nested more than {MAX_DEPTH} deep at byte {}",
                        tag.start
                    ));
                }
                frames.push((Some((name.to_string(), s == '^')), Vec::new()));
            }
            Some('/') => {
                let (opened, children) = frames.pop().expect("the root frame is never popped");
                match opened {
                    Some((open_name, inverted)) if open_name == name => {
                        frames
                            .last_mut()
                            .expect("a section has a parent")
                            .1
                            .push(Token::Section {
                                name: open_name,
                                inverted,
                                children,
                            });
                    }
                    Some((open_name, _)) => {
                        return Err(format!(
                            "section '{open_name}' is closed by '{name}' at byte {}",
                            tag.start
                        ))
                    }
                    None => {
                        return Err(format!(
                            "'{name}' is closed at byte {} but was never opened",
                            tag.start
                        ))
                    }
                }
            }
            sigil => {
                check_name(name, tag.start)?;
                frames
                    .last_mut()
                    .expect("the root frame")
                    .1
                    .push(Token::Var {
                        name: name.to_string(),
                        escape: sigil.is_none(),
                    });
            }
        }
    }
    let (opened, tokens) = frames.pop().expect("the root frame");
    match opened {
        None => Ok(tokens),
        Some((name, _)) => Err(format!("section '{name}' is never closed")),
    }
}

fn check_name(name: &str, at: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("empty tag at byte {at}"));
    }
    Ok(())
}

fn push_text(frames: &mut [Frame], text: &str) {
    if text.is_empty() {
        return;
    }
    let tokens = &mut frames.last_mut().expect("the root frame").1;
    if let Some(Token::Text(t)) = tokens.last_mut() {
        t.push_str(text);
    } else {
        tokens.push(Token::Text(text.to_string()));
    }
}

fn read_tag<'a>(src: &'a str, start: usize, open: &str, close: &str) -> Result<Tag<'a>, String> {
    let after_open = start + open.len();
    let unclosed = || {
        let shown: String = src[start..].chars().take(20).collect();
        format!("tag '{shown}' at byte {start} is never closed")
    };
    // The triple mustache only exists with the default delimiters.
    if open == "{{" && src[after_open..].starts_with('{') {
        let body_start = after_open + 1;
        let rel = src[body_start..].find("}}}").ok_or_else(unclosed)?;
        return Ok(Tag {
            sigil: Some('&'),
            body: &src[body_start..body_start + rel],
            start,
            end: body_start + rel + 3,
        });
    }
    let rel = src[after_open..].find(close).ok_or_else(unclosed)?;
    let inner = &src[after_open..after_open + rel];
    let end = after_open + rel + close.len();
    let trimmed = inner.trim_start();
    let sigil = trimmed
        .chars()
        .next()
        .filter(|c| matches!(c, '#' | '^' | '/' | '!' | '=' | '>' | '&'));
    let body = match sigil {
        Some(c) => &trimmed[c.len_utf8()..],
        None => inner,
    };
    Ok(Tag {
        sigil,
        body,
        start,
        end,
    })
}

/// For a tag alone on its line (only blanks around it): where the line starts and where the
/// next line starts, so the whole line is dropped.
fn standalone(src: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    if !src[line_start..start]
        .chars()
        .all(|c| c == ' ' || c == '\t')
    {
        return None;
    }
    // As pystache: blanks may precede the tag, but the line must end right after it.
    let after = &src[end..];
    if after.is_empty() {
        Some((line_start, src.len()))
    } else if after.starts_with("\r\n") {
        Some((line_start, end + 2))
    } else if after.starts_with('\n') {
        Some((line_start, end + 1))
    } else {
        None
    }
}

fn lookup<'v>(stack: &[&'v Value], name: &str) -> Option<&'v Value> {
    if name == "." {
        return stack.last().copied();
    }
    let mut parts = name.split('.');
    let first = parts.next()?;
    // The first part is looked up from the innermost context outwards, the rest inside it.
    let mut v = stack.iter().rev().find_map(|c| c.get(first))?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

pub(super) use crate::input::python_truthy as truthy;

/// Python's `str()` of the value cfn-init parsed from JSON.
pub(super) fn python_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            super::files::python_float_repr(n.as_f64().unwrap_or_default())
        }
        Value::Number(n) => n.to_string(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of a parsed JSON value (how `str()` prints a list's or dict's items).
fn python_repr(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Value::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        scalar => python_str(scalar),
    }
}

/// Python's `html.escape(s, quote=True)`.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

/// Stops once `out` is over [`MAX_OUTPUT`] (the caller reports it): every loop checks, so
/// nested sections over long lists stop in time and in memory.
fn render_tokens<'v>(tokens: &'v [Token], stack: &mut Vec<&'v Value>, out: &mut String) {
    for t in tokens {
        if out.len() > MAX_OUTPUT {
            return;
        }
        match t {
            Token::Text(s) => out.push_str(s),
            Token::Var { name, escape } => {
                if let Some(v) = lookup(stack, name) {
                    let s = python_str(v);
                    if *escape {
                        escape_into(&s, out);
                    } else {
                        out.push_str(&s);
                    }
                }
            }
            Token::Section {
                name,
                inverted,
                children,
            } => {
                let v = lookup(stack, name);
                let on = v.is_some_and(truthy);
                if *inverted {
                    if !on {
                        render_tokens(children, stack, out);
                    }
                    continue;
                }
                let Some(v) = v.filter(|_| on) else {
                    continue;
                };
                let items: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    if out.len() > MAX_OUTPUT {
                        return;
                    }
                    stack.push(item);
                    render_tokens(children, stack, out);
                    stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected outputs are pystache 0.6.8's (`pystache.render(template, context)`).
    #[test]
    fn renders_as_pystache() {
        let ctx = json!({
            "x": "<a href=\"/\">O'Neil & co</a>", "port": 8080, "ratio": 1.5, "two": 2.0,
            "flag": true, "off": false, "nothing": null, "zero": 0,
            "db": {"host": "db.internal"},
            "servers": [{"name": "a", "port": 1}, {"name": "b", "port": 2}],
            "tags": ["x", "y"], "none": [], "empty": "",
            "l": ["a'b", "c\"d", "e'f\"g", "h\ni\\", 1, 1.5, null, true, {"k": [1]}],
            "m": {"b": 1, "a": "x"}
        });
        let cases: &[(&str, &str)] = &[
            ("{{x}}", "&lt;a href=&quot;/&quot;&gt;O&#x27;Neil &amp; co&lt;/a&gt;"),
            ("{{{x}}}|{{&x}}|{{& x }}", "<a href=\"/\">O'Neil & co</a>|<a href=\"/\">O'Neil & co</a>|<a href=\"/\">O'Neil & co</a>"),
            ("{{port}} {{ratio}} {{two}} {{flag}} {{off}} {{nothing}} {{zero}}", "8080 1.5 2.0 True False None 0"),
            ("{{db.host}} {{db.nope}} {{nope.x}} [{{missing}}]", "db.internal   []"),
            ("{{#servers}}{{name}}:{{port}} {{/servers}}", "a:1 b:2 "),
            ("{{#servers}}{{port}}{{ratio}};{{/servers}}", "11.5;21.5;"),
            ("{{#tags}}[{{.}}]{{/tags}}", "[x][y]"),
            ("{{#none}}Y{{/none}}{{^none}}N{{/none}}", "N"),
            ("{{#off}}Y{{/off}}{{^off}}N{{/off}}{{#zero}}Z{{/zero}}{{#empty}}E{{/empty}}{{^nothing}}n{{/nothing}}", "Nn"),
            ("{{#flag}}on{{/flag}} {{#db}}{{host}}{{/db}} {{#port}}{{.}}{{/port}}", "on db.internal 8080"),
            ("{{! comment }}a{{!x}}b", "ab"),
            ("{{=<% %>=}}<% port %> {{port}} <%={{ }}=%>{{port}}", "8080 {{port}} 8080"),
            ("a{{>part}}b", "ab"),
            ("list:\n{{#tags}}\n  - {{.}}\n{{/tags}}\nend\n", "list:\n  - x\n  - y\nend\n"),
            ("  {{#flag}}\nyes\n  {{/flag}}\n", "yes\n"),
            // pystache: a blank after the tag makes the line not standalone.
            ("{{#flag}} \nyes\n{{/flag}}\t\n", " \nyes\n\t\n"),
            ("a\r\n{{#flag}}\r\nb\r\n{{/flag}}\r\n", "a\r\nb\r\n"),
            ("{{! standalone }}\nline\n", "line\n"),
            ("x {{#flag}}\ny{{/flag}} z", "x \ny z"),
            ("{{#tags}}{{tags}}{{/tags}}", "[&#x27;x&#x27;, &#x27;y&#x27;][&#x27;x&#x27;, &#x27;y&#x27;]"),
            ("{{{l}}}", r#"["a'b", 'c"d', 'e\'f"g', 'h\ni\\', 1, 1.5, None, True, {'k': [1]}]"#),
            ("{{{m}}}", "{'b': 1, 'a': 'x'}"),
        ];
        for (template, want) in cases {
            assert_eq!(
                render_pystache(template, &ctx).unwrap(),
                *want,
                "{template}"
            );
        }
    }

    #[test]
    fn section_fan_out_stops_at_the_output_cap() {
        // 8 nested sections over a 40-item list: 40^8 repetitions of a few bytes, from a
        // template well under 1 KB. Before the cap this allocated until the process aborted.
        let list: Vec<Value> = (0..40).map(|i| json!(i)).collect();
        let ctx = json!({"l": list});
        let template = "{{#l}}".repeat(8) + "0123456789abcdef" + &"{{/l}}".repeat(8);
        let e = render(&template, &ctx).unwrap_err();
        assert!(e.contains("renders to more than"), "{e}");
    }

    #[test]
    fn broken_templates_are_errors() {
        let ctx = json!({});
        for (template, says) in [
            ("{{#a}}x", "section 'a' is never closed"),
            ("{{#a}}x{{/b}}", "section 'a' is closed by 'b'"),
            ("x{{/b}}", "'b' is closed at byte 1 but was never opened"),
            ("a {{b", "is never closed"),
            ("{{}}", "empty tag"),
            ("{{=<%=}}", "bad delimiter change"),
            (&"{{#a}}".repeat(101), "nested more than 100 deep"),
        ] {
            let e = render_pystache(template, &ctx).unwrap_err();
            assert!(e.contains(says), "{template}: {e}");
        }
    }
}
