//! Python's `configparser.ConfigParser` as cfn-hup uses it, so existing `cfn-hup.conf`,
//! `hooks.conf` and `hooks.d/*` files read exactly as they do under cfn-hup.
//!
//! cfn-hup builds `ConfigParser.SafeConfigParser()` (update_hooks.py:47,76@25fabe91) with
//! `import configparser as ConfigParser` (update_hooks.py:35): on Python 3 (bin/cfn-hup:1 is
//! `python3`) that is a deprecated alias of `ConfigParser` with its defaults: delimiters `=` and
//! `:`, full-line comments `#` and `;` only (no inline comments), `strict=True`,
//! `empty_lines_in_values=True`, `[DEFAULT]` as the default section, option names lowercased
//! (`optionxform`), and `BasicInterpolation` (`%%`, `%(name)s`, depth limit 10). The parser
//! below follows `RawConfigParser._read` of CPython 3.11 (Lib/configparser.py) line by line;
//! `tests/hup_ini_corpus.py` checks it against Python's own module on a corpus.
//!
//! Interpolation happens on [`Ini::get`], not on reading, as in Python: a `%` error in an option
//! cfn-hup never reads is not an error.
//!
//! Deliberately different: the input is bounded (a file size cap, and a cap on the size and on
//! the work of one interpolated value), where Python would exhaust memory or spin on a hostile
//! file (`a = %(b)s%(b)s`, `b = %(c)s%(c)s`, ... doubles ten times, fanning out further each
//! time).

use std::collections::{HashMap, HashSet};

/// The largest file read (bytes). cfn-hup's files are a few hundred bytes; a megabyte is room
/// for any real one and keeps a hostile one from taking the daemon's memory.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// `configparser.MAX_INTERPOLATION_DEPTH` (CPython 3.11 Lib/configparser.py).
pub const MAX_INTERPOLATION_DEPTH: usize = 10;

/// The longest value interpolation may produce (bytes). Ours, not Python's: see the module doc.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most `%(name)s` references one interpolation may expand, counting nested ones. Ours:
/// references to empty values produce no output but still take time.
pub const MAX_EXPANSIONS: usize = 100_000;

/// The default section's name (`ConfigParser.default_section`).
pub const DEFAULT_SECTION: &str = "DEFAULT";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniError {
    #[error("{file}: larger than the {max}-byte limit for a configuration file")]
    TooBig { file: String, max: usize },
    #[error("{file}:{line}: not valid UTF-8 (Python reads it as UTF-8 and fails too)")]
    Encoding { file: String, line: usize },
    /// `MissingSectionHeaderError`.
    #[error("{file}:{line}: an option before any [section] header: {text:?}")]
    MissingSectionHeader {
        file: String,
        line: usize,
        text: String,
    },
    /// `ParsingError`: lines that are neither a section header, an option (`key = value` or
    /// `key: value`), a comment nor a continuation. Python reports all of them at the end of the
    /// file; so do we.
    #[error("{file}: lines that are not `[section]`, `key = value`, `key: value`, a comment or an indented continuation: {}", lines.iter().map(|(n, t)| format!("line {n}: {t:?}")).collect::<Vec<_>>().join("; "))]
    Parsing {
        file: String,
        lines: Vec<(usize, String)>,
    },
    /// `DuplicateSectionError` (strict mode): the same section twice in one file.
    #[error("{file}:{line}: section [{section}] already appears earlier in this file")]
    DuplicateSection {
        file: String,
        line: usize,
        section: String,
    },
    /// `DuplicateOptionError` (strict mode): the same option twice in one section of one file.
    #[error("{file}:{line}: option '{option}' already appears earlier in section [{section}] of this file")]
    DuplicateOption {
        file: String,
        line: usize,
        section: String,
        option: String,
    },
    #[error("no section [{section}]")]
    NoSection { section: String },
    #[error("no option '{option}' in section [{section}]")]
    NoOption { section: String, option: String },
    /// `InterpolationSyntaxError`.
    #[error("{at}: option '{option}' in [{section}]: {message}")]
    InterpolationSyntax {
        at: String,
        section: String,
        option: String,
        message: String,
    },
    /// `InterpolationMissingOptionError`.
    #[error("{at}: option '{option}' in [{section}] refers to %({reference})s, which is neither in [{section}] nor in [DEFAULT]")]
    InterpolationMissingOption {
        at: String,
        section: String,
        option: String,
        reference: String,
    },
    /// `InterpolationDepthError`: more than [`MAX_INTERPOLATION_DEPTH`] nested references
    /// (a reference to itself, or a cycle).
    #[error("{at}: option '{option}' in [{section}]: %(name)s references nest deeper than {MAX_INTERPOLATION_DEPTH} (a cycle?)")]
    InterpolationDepth {
        at: String,
        section: String,
        option: String,
    },
    /// Ours: see [`MAX_VALUE_BYTES`] and [`MAX_EXPANSIONS`].
    #[error("{at}: option '{option}' in [{section}]: interpolation expands beyond {MAX_VALUE_BYTES} bytes or {MAX_EXPANSIONS} references")]
    InterpolationTooLarge {
        at: String,
        section: String,
        option: String,
    },
}

/// One option's raw value and where it was set (the last file that set it).
#[derive(Debug, Clone)]
struct Entry {
    /// While a file is read: its lines (joined when the file ends); after: the joined value.
    lines: Vec<String>,
    file: usize,
    line: usize,
}

impl Entry {
    fn value(&self) -> &str {
        debug_assert!(self.lines.len() == 1);
        &self.lines[0]
    }
}

type Options = HashMap<String, Entry>;

/// A `ConfigParser` after one or more `read` calls.
#[derive(Debug, Default)]
pub struct Ini {
    files: Vec<String>,
    defaults: Options,
    /// In the order they first appeared (Python's dict order).
    order: Vec<String>,
    sections: HashMap<String, Options>,
}

/// Python's `str.isspace()`, which is also what `str.strip()` strips and what `\s` matches in a
/// `str` regex: Unicode White_Space plus the four separators U+001C..U+001F.
pub fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// `str.lower()`, which is `optionxform`.
fn optionxform(s: &str) -> String {
    s.to_lowercase()
}

enum Cur {
    Defaults,
    Section(String),
}

impl Ini {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one file as `ConfigParser.read` does for each name it is given (`_read`): sections
    /// and options merge into what earlier files set (a later file's option replaces an earlier
    /// one); within this one file a section or option twice is an error (strict mode). After an
    /// error, `self` must not be used (Python leaves it half-read too; cfn-hup then exits).
    pub fn read(&mut self, name: &str, bytes: &[u8]) -> Result<(), IniError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(IniError::TooBig {
                file: name.to_string(),
                max: MAX_FILE_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| IniError::Encoding {
            file: name.to_string(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
        })?;
        // Python opens the file in text mode: universal newlines turn `\r\n` and `\r` into `\n`
        // before the lines are iterated; other Unicode line breaks do not split lines.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let file = self.files.len();
        self.files.push(name.to_string());

        let mut added_sections: HashSet<String> = HashSet::new();
        let mut added_options: HashSet<(String, String)> = HashSet::new();
        let mut cur: Option<Cur> = None;
        let mut sectname = String::new();
        let mut optname: Option<String> = None;
        let mut indent_level = 0usize;
        let mut bad_lines: Vec<(usize, String)> = Vec::new();

        for (i, line) in text.split_terminator('\n').enumerate() {
            let lineno = i + 1;
            let stripped = py_strip(line);
            let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
            let value = if is_comment { "" } else { stripped };
            if value.is_empty() {
                // empty_lines_in_values: an empty line (not a comment) belongs to the value
                // being read; trailing ones go when the value is joined and rstripped.
                if !is_comment {
                    if let (Some(c), Some(opt)) = (&cur, optname.as_deref()) {
                        if !opt.is_empty() {
                            if let Some(e) = self.options_mut(c).get_mut(opt) {
                                e.lines.push(String::new());
                            }
                        }
                    }
                }
                continue;
            }
            // Indentation counts characters, as Python's `NONSPACECRE.search(line).start()`.
            let indent = line.chars().take_while(|c| py_space(*c)).count();
            if let (Some(c), Some(opt)) = (&cur, optname.as_deref()) {
                if !opt.is_empty() && indent > indent_level {
                    if let Some(e) = self.options_mut(c).get_mut(opt) {
                        e.lines.push(value.to_string());
                    }
                    continue;
                }
            }
            indent_level = indent;
            if let Some(header) = section_header(value) {
                sectname = header.to_string();
                if self.sections.contains_key(header) {
                    if added_sections.contains(header) {
                        return Err(IniError::DuplicateSection {
                            file: name.to_string(),
                            line: lineno,
                            section: sectname,
                        });
                    }
                    added_sections.insert(sectname.clone());
                    cur = Some(Cur::Section(sectname.clone()));
                } else if header == DEFAULT_SECTION {
                    cur = Some(Cur::Defaults);
                } else {
                    self.sections.insert(sectname.clone(), Options::new());
                    self.order.push(sectname.clone());
                    added_sections.insert(sectname.clone());
                    cur = Some(Cur::Section(sectname.clone()));
                }
                optname = None;
                continue;
            }
            let Some(c) = &cur else {
                return Err(IniError::MissingSectionHeader {
                    file: name.to_string(),
                    line: lineno,
                    text: line.to_string(),
                });
            };
            match option_line(value) {
                Some((opt, val)) => {
                    if opt.is_empty() {
                        // Python records the error and carries on (it raises at the end).
                        bad_lines.push((lineno, line.to_string()));
                    }
                    let opt = optionxform(opt);
                    let key = (sectname.clone(), opt.clone());
                    if added_options.contains(&key) {
                        return Err(IniError::DuplicateOption {
                            file: name.to_string(),
                            line: lineno,
                            section: sectname,
                            option: opt,
                        });
                    }
                    added_options.insert(key);
                    self.options_mut(c).insert(
                        opt.clone(),
                        Entry {
                            lines: vec![val.to_string()],
                            file,
                            line: lineno,
                        },
                    );
                    optname = Some(opt);
                }
                None => bad_lines.push((lineno, line.to_string())),
            }
        }
        // `_join_multiline_values`: lines joined with `\n`, trailing whitespace (the empty
        // lines kept above) stripped.
        for opts in std::iter::once(&mut self.defaults).chain(self.sections.values_mut()) {
            for e in opts.values_mut() {
                if e.lines.len() > 1 {
                    let joined = e.lines.join("\n");
                    e.lines = vec![joined.trim_end_matches(py_space).to_string()];
                }
            }
        }
        if !bad_lines.is_empty() {
            return Err(IniError::Parsing {
                file: name.to_string(),
                lines: bad_lines,
            });
        }
        Ok(())
    }

    fn options_mut(&mut self, c: &Cur) -> &mut Options {
        match c {
            Cur::Defaults => &mut self.defaults,
            Cur::Section(s) => self.sections.get_mut(s).expect("a known section"),
        }
    }

    /// The section names, `[DEFAULT]` excluded, in the order they first appeared
    /// (`sections()`).
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// `has_option`: an option of the section or of `[DEFAULT]` (which every section inherits);
    /// false for a section that does not exist.
    pub fn has_option(&self, section: &str, option: &str) -> bool {
        let option = optionxform(option);
        if section.is_empty() || section == DEFAULT_SECTION {
            return self.defaults.contains_key(&option);
        }
        match self.sections.get(section) {
            None => false,
            Some(opts) => opts.contains_key(&option) || self.defaults.contains_key(&option),
        }
    }

    /// The option names of a section, its own and inherited ones (`options()`), sorted: the
    /// tests compare them with Python's.
    #[cfg(test)]
    pub fn options(&self, section: &str) -> Vec<String> {
        let mut names: Vec<String> = self.defaults.keys().cloned().collect();
        if section != DEFAULT_SECTION {
            if let Some(opts) = self.sections.get(section) {
                names.extend(opts.keys().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn lookup<'a>(&'a self, section: &str, option: &str) -> Option<&'a Entry> {
        let own = if section == DEFAULT_SECTION {
            None
        } else {
            self.sections.get(section).and_then(|o| o.get(option))
        };
        own.or_else(|| self.defaults.get(option))
    }

    /// Where `section`/`option` was set, as `file:line`.
    pub fn origin(&self, section: &str, option: &str) -> Option<String> {
        self.lookup(section, &optionxform(option))
            .map(|e| format!("{}:{}", self.files[e.file], e.line))
    }

    /// The value before interpolation (`get(..., raw=True)`).
    pub fn get_raw(&self, section: &str, option: &str) -> Result<&str, IniError> {
        if section != DEFAULT_SECTION && !self.sections.contains_key(section) {
            return Err(IniError::NoSection {
                section: section.to_string(),
            });
        }
        let option = optionxform(option);
        self.lookup(section, &option)
            .map(Entry::value)
            .ok_or_else(|| IniError::NoOption {
                section: section.to_string(),
                option,
            })
    }

    /// `get(section, option)`: the value with `BasicInterpolation` applied: `%%` is `%`,
    /// `%(name)s` is the (interpolated) value of `name` in this section or `[DEFAULT]`.
    pub fn get(&self, section: &str, option: &str) -> Result<String, IniError> {
        let raw = self.get_raw(section, option)?;
        let option = optionxform(option);
        let mut run = Interpolation {
            ini: self,
            section,
            option: &option,
            at: self.origin(section, &option).unwrap_or_default(),
            out: String::new(),
            expansions: 0,
        };
        run.some(raw, 1)?;
        Ok(run.out)
    }
}

/// `SECTCRE` = `\[(?P<header>.+)\]`, matched at the start of the stripped line: `.+` is greedy,
/// so the header runs to the line's last `]` (`[a] b]x` is section `a] b`, the `x` ignored), and
/// it is not stripped (`[ main ]` is section ` main `).
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// `OPTCRE` with the delimiters `=` and `:`: the option is everything before the first of them
/// (right-stripped), the value everything after it (stripped). `None` when there is neither.
fn option_line(value: &str) -> Option<(&str, &str)> {
    let p = value.find(['=', ':'])?;
    Some((
        value[..p].trim_end_matches(py_space),
        py_strip(&value[p + 1..]),
    ))
}

/// `BasicInterpolation._interpolate_some` (CPython 3.11 Lib/configparser.py).
struct Interpolation<'a> {
    ini: &'a Ini,
    section: &'a str,
    option: &'a str,
    at: String,
    out: String,
    expansions: usize,
}

impl Interpolation<'_> {
    fn syntax(&self, message: String) -> IniError {
        IniError::InterpolationSyntax {
            at: self.at.clone(),
            section: self.section.to_string(),
            option: self.option.to_string(),
            message,
        }
    }

    fn too_large(&self) -> IniError {
        IniError::InterpolationTooLarge {
            at: self.at.clone(),
            section: self.section.to_string(),
            option: self.option.to_string(),
        }
    }

    fn push(&mut self, s: &str) -> Result<(), IniError> {
        if self.out.len() + s.len() > MAX_VALUE_BYTES {
            return Err(self.too_large());
        }
        self.out.push_str(s);
        Ok(())
    }

    fn some(&mut self, mut rest: &str, depth: usize) -> Result<(), IniError> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(IniError::InterpolationDepth {
                at: self.at.clone(),
                section: self.section.to_string(),
                option: self.option.to_string(),
            });
        }
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                return self.push(rest);
            };
            self.push(&rest[..p])?;
            rest = &rest[p..];
            match rest[1..].chars().next() {
                Some('%') => {
                    self.push("%")?;
                    rest = &rest[2..];
                }
                Some('(') => {
                    // `_KEYCRE` = `%\(([^)]+)\)s`
                    let close = rest[2..].find(')').map(|c| c + 2);
                    let name = match close {
                        Some(c) if c > 2 && rest[c + 1..].starts_with('s') => &rest[2..c],
                        _ => {
                            return Err(self
                                .syntax(format!("bad interpolation variable reference {rest:?}")))
                        }
                    };
                    rest = &rest[close.expect("matched") + 2..];
                    let var = optionxform(name);
                    self.expansions += 1;
                    if self.expansions > MAX_EXPANSIONS {
                        return Err(self.too_large());
                    }
                    let Some(entry) = self.ini.lookup(self.section, &var) else {
                        return Err(IniError::InterpolationMissingOption {
                            at: self.at.clone(),
                            section: self.section.to_string(),
                            option: self.option.to_string(),
                            reference: var,
                        });
                    };
                    let v = entry.value();
                    if v.contains('%') {
                        self.some(v, depth + 1)?;
                    } else {
                        self.push(v)?;
                    }
                }
                _ => {
                    return Err(self.syntax(format!(
                        "'%' must be followed by '%' or '(', found: {rest:?}"
                    )))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(files: &[&str]) -> Ini {
        let mut i = Ini::new();
        for (n, f) in files.iter().enumerate() {
            i.read(&format!("f{n}"), f.as_bytes()).unwrap();
        }
        i
    }

    fn err(text: &str) -> IniError {
        Ini::new().read("f", text.as_bytes()).unwrap_err()
    }

    #[test]
    fn sections_options_both_delimiters_and_lowercased_keys() {
        let i = ini(&["[main]\nStack = s1\nREGION: eu-west-1\n  \n[b]\nk=v=w\n"]);
        assert_eq!(i.sections().collect::<Vec<_>>(), ["main", "b"]);
        assert_eq!(i.get("main", "stack").unwrap(), "s1");
        assert_eq!(i.get("main", "Region").unwrap(), "eu-west-1");
        // Only the first delimiter splits.
        assert_eq!(i.get("b", "k").unwrap(), "v=w");
        assert!(i.has_option("main", "STACK"));
        assert!(
            !i.has_option("Main", "stack"),
            "section names are case-sensitive"
        );
        assert!(!i.has_option("nope", "stack"));
        assert_eq!(i.origin("main", "region").unwrap(), "f0:3");
    }

    #[test]
    fn comments_only_at_line_start_and_inline_text_kept() {
        let i = ini(&["# c\n; c\n[s]\n  # indented comment\na = 1 # not a comment\nb = x ; y\n"]);
        assert_eq!(i.get("s", "a").unwrap(), "1 # not a comment");
        assert_eq!(i.get("s", "b").unwrap(), "x ; y");
    }

    #[test]
    fn continuation_lines_empty_lines_and_comments_inside_values() {
        let i = ini(&["[s]\naction = a\n  b\n\n  # skipped\n   c\n\n\nnext = 1\n"]);
        assert_eq!(i.get("s", "action").unwrap(), "a\nb\n\nc");
        assert_eq!(i.get("s", "next").unwrap(), "1");
        // An indented option line sets the indent a continuation must exceed.
        let i = ini(&["[s]\n  a = 1\n  b = 2\n    more\n"]);
        assert_eq!(i.get("s", "a").unwrap(), "1");
        assert_eq!(i.get("s", "b").unwrap(), "2\nmore");
        // Indentation counts characters: one ideographic space (3 bytes) is less than two spaces.
        let i = ini(&["[s]\n\u{3000}a = 1\n  more\n"]);
        assert_eq!(i.get("s", "a").unwrap(), "1\nmore");
    }

    #[test]
    fn headers_are_greedy_and_unstripped() {
        let i = ini(&["[a] b]x\nk=1\n[ c ]\nk=2\n"]);
        assert_eq!(i.sections().collect::<Vec<_>>(), ["a] b", " c "]);
        // `[]` is not a header; with no section before it, an error.
        assert!(matches!(
            err("[]\n"),
            IniError::MissingSectionHeader { line: 1, .. }
        ));
    }

    #[test]
    fn default_section_is_inherited_and_not_listed() {
        let i = ini(&["[DEFAULT]\nrunas = root\n[h]\npath = p\n[default]\nx=1\n"]);
        assert_eq!(i.sections().collect::<Vec<_>>(), ["h", "default"]);
        assert!(i.has_option("h", "runas"));
        assert!(i.has_option("DEFAULT", "runas"));
        assert_eq!(i.get("h", "runas").unwrap(), "root");
        assert_eq!(i.options("h"), ["path", "runas"]);
        assert!(!i.has_option("h", "x"), "[default] is an ordinary section");
    }

    #[test]
    fn later_files_merge_and_override() {
        let i = ini(&["[h]\na = 1\nb = 2\n[g]\n", "[x]\n[h]\na = 3\n"]);
        assert_eq!(i.sections().collect::<Vec<_>>(), ["h", "g", "x"]);
        assert_eq!(i.get("h", "a").unwrap(), "3");
        assert_eq!(i.get("h", "b").unwrap(), "2");
        assert_eq!(i.origin("h", "a").unwrap(), "f1:3");
    }

    #[test]
    fn duplicates_within_one_file_are_errors() {
        assert_eq!(
            err("[a]\nk=1\n[a]\n"),
            IniError::DuplicateSection {
                file: "f".into(),
                line: 3,
                section: "a".into()
            }
        );
        assert_eq!(
            err("[a]\nk=1\nK : 2\n"),
            IniError::DuplicateOption {
                file: "f".into(),
                line: 3,
                section: "a".into(),
                option: "k".into()
            }
        );
        assert!(matches!(
            err("[DEFAULT]\nk=1\n[DEFAULT]\nk=2\n"),
            IniError::DuplicateOption { line: 4, .. }
        ));
        // [DEFAULT] itself may appear twice.
        let i = ini(&["[DEFAULT]\nk=1\n[DEFAULT]\nj=2\n"]);
        assert_eq!(i.get("DEFAULT", "j").unwrap(), "2");
    }

    #[test]
    fn bad_lines_are_all_reported_at_the_end_but_duplicates_at_once() {
        assert_eq!(
            err("[s]\njunk\nk=1\n= v\n"),
            IniError::Parsing {
                file: "f".into(),
                lines: vec![(2, "junk".into()), (4, "= v".into())]
            }
        );
        assert!(matches!(
            err("[s]\njunk\nk=1\nk=2\n"),
            IniError::DuplicateOption { .. }
        ));
        assert!(matches!(
            err("k = v\n[s]\n"),
            IniError::MissingSectionHeader { line: 1, .. }
        ));
    }

    #[test]
    fn newlines_bom_and_encoding() {
        let i = ini(&["[s]\r\na = 1\rb = 2\r\n"]);
        assert_eq!(i.get("s", "b").unwrap(), "2");
        // A BOM is not whitespace to Python: the header does not match.
        assert!(matches!(
            err("\u{feff}[s]\n"),
            IniError::MissingSectionHeader { .. }
        ));
        assert_eq!(
            Ini::new().read("f", b"[s]\na = \xff\n").unwrap_err(),
            IniError::Encoding {
                file: "f".into(),
                line: 2
            }
        );
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        assert!(matches!(
            Ini::new().read("f", &big).unwrap_err(),
            IniError::TooBig { .. }
        ));
    }

    #[test]
    fn python_whitespace_includes_the_separators() {
        assert!(py_space('\u{1f}') && py_space('\u{85}') && py_space('\u{3000}'));
        assert!(!py_space('\u{feff}') && !py_space('\u{200b}'));
        let i = ini(&["[s]\na = \u{1c}v\u{1d}\n"]);
        assert_eq!(i.get("s", "a").unwrap(), "v");
    }

    #[test]
    fn interpolation_basic() {
        let i = ini(&[
            "[DEFAULT]\ndir = /etc/cfn\n[h]\naction = %(dir)s/x 100%% %(Name)s\nname = n\nbad = 5%\nbad2 = %(x)d\nmissing = %(nope)s\nempty = %()s\n",
        ]);
        assert_eq!(i.get("h", "action").unwrap(), "/etc/cfn/x 100% n");
        assert_eq!(
            i.get_raw("h", "action").unwrap(),
            "%(dir)s/x 100%% %(Name)s"
        );
        assert!(matches!(
            i.get("h", "bad").unwrap_err(),
            IniError::InterpolationSyntax { .. }
        ));
        assert!(matches!(
            i.get("h", "bad2").unwrap_err(),
            IniError::InterpolationSyntax { .. }
        ));
        assert!(matches!(
            i.get("h", "empty").unwrap_err(),
            IniError::InterpolationSyntax { .. }
        ));
        let e = i.get("h", "missing").unwrap_err();
        assert_eq!(
            e,
            IniError::InterpolationMissingOption {
                at: "f0:8".into(),
                section: "h".into(),
                option: "missing".into(),
                reference: "nope".into()
            }
        );
        assert!(e.to_string().starts_with("f0:8: "), "{e}");
    }

    #[test]
    fn interpolation_nests_from_the_section_being_read() {
        // `x` comes from [DEFAULT] but its `%(y)s` is looked up in [h] first.
        let i = ini(&["[DEFAULT]\nx = <%(y)s>\ny = d\n[h]\ny = h\nv = %(x)s\n[g]\nv = %(x)s\n"]);
        assert_eq!(i.get("h", "v").unwrap(), "<h>");
        assert_eq!(i.get("g", "v").unwrap(), "<d>");
    }

    #[test]
    fn interpolation_depth_limit_is_pythons() {
        // v0 -> v1 -> ... : depth 1 reads v0's text; a chain of 9 references stays within 10.
        let chain = |n: usize| {
            let mut s = String::from("[s]\n");
            for k in 0..n {
                s.push_str(&format!("v{k} = %(v{})s\n", k + 1));
            }
            s.push_str(&format!("v{n} = end\n"));
            s
        };
        assert_eq!(ini(&[&chain(9)]).get("s", "v0").unwrap(), "end");
        // The last value has no `%`, so it is not a level of its own: 10 references still fit.
        assert_eq!(ini(&[&chain(10)]).get("s", "v0").unwrap(), "end");
        assert!(matches!(
            ini(&[&chain(11)]).get("s", "v0").unwrap_err(),
            IniError::InterpolationDepth { .. }
        ));
        assert!(matches!(
            ini(&["[s]\na = %(a)s\n"]).get("s", "a").unwrap_err(),
            IniError::InterpolationDepth { .. }
        ));
    }

    #[test]
    fn hostile_interpolation_is_bounded() {
        // Each level doubles: 2^10 copies of a 2 KiB string is 2 MiB, over the cap.
        let mut s = String::from("[s]\n");
        for k in 0..9 {
            s.push_str(&format!("v{k} = %(v{0})s%(v{0})s\n", k + 1));
        }
        s.push_str(&format!("v9 = {}%%\n", "x".repeat(2048)));
        assert!(matches!(
            ini(&[&s]).get("s", "v0").unwrap_err(),
            IniError::InterpolationTooLarge { .. }
        ));
        // References to empty values produce nothing but still count.
        let mut s = String::from("[s]\n");
        let fan = "%(n)s".repeat(50);
        for k in 0..9 {
            s.push_str(&format!(
                "v{k} = {}\n",
                fan.replace('n', &format!("v{}", k + 1))
            ));
        }
        s.push_str("v9 = %%\n");
        assert!(matches!(
            ini(&[&s]).get("s", "v0").unwrap_err(),
            IniError::InterpolationTooLarge { .. }
        ));
    }

    /// Python's class name for one of our errors, as the corpus records it.
    fn python_name(e: &IniError) -> &'static str {
        match e {
            IniError::MissingSectionHeader { .. } => "MissingSectionHeaderError",
            IniError::Parsing { .. } => "ParsingError",
            IniError::DuplicateSection { .. } => "DuplicateSectionError",
            IniError::DuplicateOption { .. } => "DuplicateOptionError",
            IniError::NoSection { .. } => "NoSectionError",
            IniError::NoOption { .. } => "NoOptionError",
            IniError::InterpolationSyntax { .. } => "InterpolationSyntaxError",
            IniError::InterpolationMissingOption { .. } => "InterpolationMissingOptionError",
            IniError::InterpolationDepth { .. } => "InterpolationDepthError",
            IniError::TooBig { .. }
            | IniError::Encoding { .. }
            | IniError::InterpolationTooLarge { .. } => "ours",
        }
    }

    /// Every case of tests/fixtures/hup_ini_corpus.json (recorded from CPython's configparser by
    /// tests/test_hup_ini_corpus.py): same sections, same `get()` for every option, same errors.
    #[test]
    fn python_corpus() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/hup_ini_corpus.json")).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() > 30);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let expect = &case["expect"];
            let mut i = Ini::new();
            let mut failed = None;
            for (n, f) in case["files"].as_array().unwrap().iter().enumerate() {
                if let Err(e) = i.read(&format!("f{n}"), f.as_str().unwrap().as_bytes()) {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(want) = expect.get("error") {
                let got = failed.map(|e| python_name(&e));
                assert_eq!(got, want.as_str(), "case {name}");
                continue;
            }
            assert!(failed.is_none(), "case {name}: {failed:?}");
            let sections: Vec<&str> = i.sections().collect();
            let want: Vec<&str> = expect["sections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(sections, want, "case {name}");
            for (section, opts) in expect["values"].as_object().unwrap() {
                let opts = opts.as_object().unwrap();
                let names: Vec<&String> = opts.keys().collect();
                let ours = i.options(section);
                assert_eq!(
                    ours.iter().collect::<Vec<_>>(),
                    names,
                    "case {name} [{section}]"
                );
                for (opt, want) in opts {
                    let got = match i.get(section, opt) {
                        Ok(v) => serde_json::json!({ "value": v }),
                        Err(e) => serde_json::json!({ "error": python_name(&e) }),
                    };
                    assert_eq!(&got, want, "case {name} [{section}] {opt}");
                }
            }
        }
    }

    #[test]
    fn no_section_and_no_option() {
        let i = ini(&["[s]\n"]);
        assert!(matches!(
            i.get("t", "a").unwrap_err(),
            IniError::NoSection { .. }
        ));
        assert!(matches!(
            i.get("s", "a").unwrap_err(),
            IniError::NoOption { .. }
        ));
    }
}
