//! The two real readers of `/etc/ecs/ecs.config`, so that what we write is checked against how
//! it is read rather than against how we meant it.
//!
//! 1. **ecs-init** (`ecs-init/docker/docker.go:438-456@8dfceca6`, `getEnvVars`): trim the file,
//!    split on `\n`, trim each line (Go's `TrimSpace`: every Unicode blank), split once on the
//!    first `=`; lines without `=` skipped; last duplicate wins; no quotes, comments or escapes.
//!    Its map becomes the agent container's environment: **this is what the agent sees.**
//! 2. **systemd** (`EnvironmentFile=-/etc/ecs/ecs.config` of the AMI's `ecs.service`), into
//!    ecs-init's own process environment, which matters for the settings ecs-init reads with
//!    `os.Getenv` ([`ECS_INIT_ENV`]). `parse_env_file_internal()` in systemd's
//!    `src/basic/env-file.c` (state machine reproduced below), as in systemd 252 (Amazon Linux
//!    2023): a comment line ending in `\` also comments out the next line (changed in v254).

/// Settings ecs-init reads from its own environment (systemd's reading): the rows of
/// `../shared/conformance/ecs-agent-settings.tsv` whose "read by" column has `ecs-init` itself
/// (not only `ecs-init(file map)`). A unit test fails when they drift.
pub const ECS_INIT_ENV: &[&str] = &[
    "AWS_DEFAULT_REGION",
    "CREDENTIALS_FETCHER_HOST",
    "DOCKER_HOST",
    "ECS_AGENT_APPARMOR_PROFILE",
    "ECS_AGENT_PID_NAMESPACE_HOST",
    "ECS_AGENT_RUN_PRIVILEGED",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
    "ECS_EXTERNAL",
    "ECS_GMSA_SUPPORTED",
    "ECS_INIT_DOCKER_LOG_FILE_NUM",
    "ECS_INIT_DOCKER_LOG_FILE_SIZE",
    "ECS_LOGLEVEL",
    "ECS_LOG_DRIVER",
    "ECS_LOG_OPTS",
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
];

/// ecs-init's reading, in file order (duplicates kept; the last one wins for ecs-init).
pub fn ecs_init(text: &str) -> Vec<(String, String)> {
    text.trim()
        .split('\n')
        .filter_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// systemd's reading of an environment file (252), in file order.
pub fn systemd(text: &str) -> Vec<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];
    const NEWLINE: &[char] = &['\n', '\r'];
    const NEED_ESCAPE: &[char] = &['"', '\\', '`', '$'];
    let mut out = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    // Byte length of the key/value before its trailing blanks, when it ends in blanks.
    let (mut key_ws, mut value_ws): (Option<usize>, Option<usize>) = (None, None);
    let mut state = S::PreKey;
    let push = |key: &mut String,
                value: &mut String,
                key_ws: Option<usize>,
                value_ws: Option<usize>,
                out: &mut Vec<(String, String)>| {
        if let Some(n) = key_ws {
            key.truncate(n);
        }
        if let Some(n) = value_ws {
            value.truncate(n);
        }
        out.push((std::mem::take(key), std::mem::take(value)));
    };
    for c in text.chars() {
        match state {
            S::PreKey => {
                if c == '#' || c == ';' {
                    state = S::Comment;
                } else if !WHITESPACE.contains(&c) {
                    state = S::Key;
                    key_ws = None;
                    key.push(c);
                }
            }
            S::Key => {
                if NEWLINE.contains(&c) {
                    state = S::PreKey;
                    key.clear();
                } else if c == '=' {
                    state = S::PreValue;
                    value_ws = None;
                } else {
                    if !WHITESPACE.contains(&c) {
                        key_ws = None;
                    } else if key_ws.is_none() {
                        key_ws = Some(key.len());
                    }
                    key.push(c);
                }
            }
            S::PreValue => {
                if NEWLINE.contains(&c) {
                    state = S::PreKey;
                    push(&mut key, &mut value, key_ws, None, &mut out);
                } else if c == '\'' {
                    state = S::Single;
                } else if c == '"' {
                    state = S::Double;
                } else if c == '\\' {
                    state = S::ValueEscape;
                } else if !WHITESPACE.contains(&c) {
                    state = S::Value;
                    value.push(c);
                }
            }
            S::Value => {
                if NEWLINE.contains(&c) {
                    state = S::PreKey;
                    push(&mut key, &mut value, key_ws, value_ws, &mut out);
                } else if c == '\\' {
                    state = S::ValueEscape;
                    value_ws = None;
                } else {
                    if !WHITESPACE.contains(&c) {
                        value_ws = None;
                    } else if value_ws.is_none() {
                        value_ws = Some(value.len());
                    }
                    value.push(c);
                }
            }
            S::ValueEscape => {
                state = S::Value;
                if !NEWLINE.contains(&c) {
                    value.push(c);
                }
            }
            S::Single => {
                if c == '\'' {
                    state = S::PreValue;
                } else {
                    value.push(c);
                }
            }
            S::Double => {
                if c == '"' {
                    state = S::PreValue;
                } else if c == '\\' {
                    state = S::DoubleEscape;
                } else {
                    value.push(c);
                }
            }
            S::DoubleEscape => {
                state = S::Double;
                if NEED_ESCAPE.contains(&c) {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
            }
            S::Comment => {
                if c == '\\' {
                    state = S::CommentEscape;
                } else if NEWLINE.contains(&c) {
                    state = S::PreKey;
                }
            }
            // systemd < 254: the escaped newline continues the comment.
            S::CommentEscape => state = S::Comment,
        }
    }
    match state {
        S::Value => push(&mut key, &mut value, key_ws, value_ws, &mut out),
        S::PreValue | S::ValueEscape | S::Single | S::Double | S::DoubleEscape => {
            push(&mut key, &mut value, key_ws, None, &mut out)
        }
        _ => {}
    }
    out
}

/// Why `key=value` would not reach its readers as written, or `None` when it does. The line is
/// checked followed by another one, so a value that makes systemd swallow the next line is
/// caught too.
pub fn check(key: &str, value: &str) -> Option<String> {
    if value.contains(['\n', '\r']) {
        return Some("must be on one line: ecs.config has one KEY=VALUE per line".into());
    }
    let text = format!("{key}={value}\nNEXT_LINE=1\n");
    let line = (key.to_string(), value.to_string());
    let by_init = ecs_init(&text);
    if by_init.first() != Some(&line) {
        let got = by_init.first().map(|(_, v)| v.as_str()).unwrap_or("");
        return Some(format!(
            "ecs-init trims blanks at the end of a line, so the agent would read '{got}' instead: remove the trailing blank"
        ));
    }
    let by_systemd = systemd(&text);
    if by_systemd.len() != 2 || by_systemd[1] != ("NEXT_LINE".into(), "1".into()) {
        return Some(
            "systemd reads ecs.config too (ecs.service's EnvironmentFile=): a value that ends in '\\' or opens a quote it does not close makes it swallow the next line".into(),
        );
    }
    if ECS_INIT_ENV.contains(&key) && by_systemd[0] != line {
        return Some(format!(
            "ecs-init reads {key} from its own environment, which systemd fills from this file with shell-like rules (quotes at the start, '\\' escapes, blanks after '=' dropped): it would read '{}'",
            by_systemd[0].1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_init_reads_lines_raw() {
        let got = ecs_init(" A=1\n#B=2\nC = 3 \nno equals\nD=\"q\"\nA=4\n");
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("#B".into(), "2".into()),
                ("C ".into(), " 3".into()),
                ("D".into(), "\"q\"".into()),
                ("A".into(), "4".into()),
            ]
        );
    }

    #[test]
    fn systemd_reads_like_a_shell_mostly() {
        let got = systemd(
            "# c\nA=1\n B = x y \nC=\"a\"'b'c\nD=a\\\nb\nE=\"x\\y\\$\"\nF='{\"k\": \"v\"}'\n; c \\\nG=hidden\nH=\n",
        );
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x y".into()),
                ("C".into(), "abc".into()),
                ("D".into(), "ab".into()),
                ("E".into(), "x\\y$".into()),
                ("F".into(), "{\"k\": \"v\"}".into()),
                ("H".into(), "".into()),
            ]
        );
    }

    #[test]
    fn values_that_do_not_survive_are_named() {
        assert_eq!(check("ECS_LOGLEVEL", "debug"), None);
        // Only ecs-init's reading reaches the agent: JSON with quotes and backslashes is fine.
        assert_eq!(
            check("ECS_INSTANCE_ATTRIBUTES", r#"{"a":"b \"c\" \\d #e $f"}"#),
            None
        );
        assert_eq!(check("ECS_RESERVED_MEMORY", " 32"), None);
        assert!(check("ECS_RESERVED_MEMORY", "32 ")
            .unwrap()
            .contains("trailing"));
        assert!(check("ECS_RESERVED_MEMORY", "32\u{a0}").is_some());
        assert!(check("ECS_CONTAINER_INSTANCE_TAGS", "a\\")
            .unwrap()
            .contains("swallow"));
        assert!(check("ECS_CONTAINER_INSTANCE_TAGS", "\"open")
            .unwrap()
            .contains("swallow"));
        // ECS_LOG_OPTS is read by ecs-init from systemd's reading: quotes and escapes change it.
        let e = check("ECS_LOG_OPTS", r#"{"labels":"a \"b\""}"#).unwrap();
        assert!(e.contains("own environment"), "{e}");
        assert_eq!(check("ECS_LOG_OPTS", r#"{"max-size":"10m"}"#), None);
        assert!(check("ECS_LOGLEVEL", "'debug'").is_some());
        assert!(check("ECS_LOGLEVEL", " debug").is_some());
        assert!(check("X", "a\nb").unwrap().contains("one line"));
    }

    #[test]
    fn ecs_init_env_is_the_agents_list() {
        let rows = crate::config::agent_keys::tests::conformance_rows();
        let mut want: Vec<&str> = rows
            .iter()
            .filter(|(_, by, os)| os == "linux" && by.split(',').any(|r| r == "ecs-init"))
            .map(|(k, _, _)| k.as_str())
            .collect();
        want.sort_unstable();
        let mut have = ECS_INIT_ENV.to_vec();
        have.sort_unstable();
        assert_eq!(have, want);
    }
}
