use std::path::PathBuf;

/// Everything that can go wrong reading or resolving a template. Each variant names the
/// file, the line where known (from the parser, or by finding the key path in the text),
/// and the dotted key path at fault (`Resources.LC.Metadata.ecs-bootstrap.Cluster`, list
/// items as `[0]`, intrinsic arguments as `.Fn::Join[1]`).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{}: cannot read template: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid JSON/YAML.
    #[error("{file}{}: {message}", at(*line, *column))]
    Syntax {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// A YAML tag that is not a CloudFormation short form (e.g. `!Reff`).
    #[error("{file}{}: {path}: unknown YAML tag !{tag}", at(*line, *column))]
    UnknownTag {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        path: String,
        tag: String,
    },

    /// Wrong shape: arity, types, malformed sections, unknown `Fn::` names.
    #[error("{at}: {path}: {message}")]
    Invalid {
        at: Origin,
        path: String,
        message: String,
    },

    /// `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` or `Condition` names something undeclared.
    #[error("{at}: {path}: {function} to unknown {kind} '{name}'")]
    UnknownName {
        at: Origin,
        path: String,
        function: &'static str,
        kind: &'static str,
        name: String,
    },

    #[error("{at}: {path}: parameter {name} has no Default: pass --param {name}=...")]
    MissingParameter {
        at: Origin,
        path: String,
        name: String,
    },

    #[error(
        "{at}: {path}: parameter {name} value '{value}' is not one of its AllowedValues [{}]", allowed.join(", ")
    )]
    DisallowedValue {
        at: Origin,
        path: String,
        name: String,
        value: String,
        /// Boxed to keep the error, which every `Result` here carries, small.
        allowed: Box<[String]>,
    },

    /// `Fn::FindInMap` lookup failed; `message` says which level was missing.
    #[error("{at}: {path}: Fn::FindInMap: {message}")]
    MissingMapping {
        at: Origin,
        path: String,
        message: String,
    },

    #[error("{at}: {path}: {what} is not supported in dry-run")]
    Unsupported {
        at: Origin,
        path: String,
        what: String,
    },

    #[error("{at}: {path}: condition cycle: {chain}")]
    ConditionCycle {
        at: Origin,
        path: String,
        chain: String,
    },

    #[error("{at}: {path}: nested too deeply")]
    TooDeep { at: Origin, path: String },

    /// Resolving expands past the byte budget (`Ref`/`Fn::Sub`/`Fn::Join` of large values,
    /// many times over): a small hostile template must not take the machine's memory.
    #[error("{at}: {path}: resolves to more than {limit} bytes")]
    TooLarge {
        at: Origin,
        path: String,
        limit: usize,
    },

    /// The template text itself is over the size cap.
    #[error(
        "{file}: {size} bytes: larger than the {limit} bytes a CloudFormation template may have"
    )]
    TooBig {
        file: String,
        size: u64,
        limit: usize,
    },

    #[error("{file}: no resource '{logical_id}' in Resources")]
    NoSuchResource { file: String, logical_id: String },

    #[error("{at}: Resources.{logical_id}: not created in this stack: its Condition {condition} is false")]
    ResourceNotCreated {
        at: Origin,
        logical_id: String,
        condition: String,
    },
}

/// Where in the template an error is: the file, and the line when it could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based; `u32` keeps the error small (clippy's `result_large_err`).
    pub line: Option<u32>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

impl TemplateError {
    /// The origin and key path of errors found after parsing, for filling in the line.
    pub(super) fn origin_and_path(&mut self) -> Option<(&mut Origin, &str)> {
        match self {
            TemplateError::Invalid { at, path, .. }
            | TemplateError::UnknownName { at, path, .. }
            | TemplateError::MissingParameter { at, path, .. }
            | TemplateError::DisallowedValue { at, path, .. }
            | TemplateError::MissingMapping { at, path, .. }
            | TemplateError::Unsupported { at, path, .. }
            | TemplateError::ConditionCycle { at, path, .. }
            | TemplateError::TooDeep { at, path }
            | TemplateError::TooLarge { at, path, .. } => Some((at, path)),
            _ => None,
        }
    }

    /// The key path at fault, when the error has one.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            TemplateError::UnknownTag { path, .. }
            | TemplateError::Invalid { path, .. }
            | TemplateError::UnknownName { path, .. }
            | TemplateError::MissingParameter { path, .. }
            | TemplateError::DisallowedValue { path, .. }
            | TemplateError::MissingMapping { path, .. }
            | TemplateError::Unsupported { path, .. }
            | TemplateError::ConditionCycle { path, .. }
            | TemplateError::TooDeep { path, .. }
            | TemplateError::TooLarge { path, .. } => Some(path),
            TemplateError::Read { .. }
            | TemplateError::TooBig { .. }
            | TemplateError::Syntax { .. }
            | TemplateError::NoSuchResource { .. }
            | TemplateError::ResourceNotCreated { .. } => None,
        }
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}
