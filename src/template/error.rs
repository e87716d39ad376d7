use std::path::PathBuf;

/// Everything that can go wrong reading or resolving a template. Each variant names the
/// file (`file`), the line where the parser knows it, and the dotted key path at fault
/// (`Resources.LC.Metadata.ecs-bootstrap.Cluster`, list items as `[0]`).
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
    #[error("{file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },

    /// `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If` or `Condition` names something undeclared.
    #[error("{file}: {path}: {function} to unknown {kind} '{name}'")]
    UnknownName {
        file: String,
        path: String,
        function: &'static str,
        kind: &'static str,
        name: String,
    },

    #[error("{file}: {path}: parameter {name} has no Default: pass --param {name}=...")]
    MissingParameter {
        file: String,
        path: String,
        name: String,
    },

    #[error("{file}: {path}: parameter {name} value '{value}' is not one of its AllowedValues {allowed}")]
    DisallowedValue {
        file: String,
        path: String,
        name: String,
        value: String,
        allowed: String,
    },

    /// `Fn::FindInMap` lookup failed; `message` says which level was missing.
    #[error("{file}: {path}: Fn::FindInMap: {message}")]
    MissingMapping {
        file: String,
        path: String,
        message: String,
    },

    #[error("{file}: {path}: {what} is not supported in dry-run")]
    Unsupported {
        file: String,
        path: String,
        what: String,
    },

    #[error("{file}: {path}: condition cycle: {chain}")]
    ConditionCycle {
        file: String,
        path: String,
        chain: String,
    },

    #[error("{file}: {path}: nested too deeply")]
    TooDeep { file: String, path: String },

    #[error("{file}: no resource '{logical_id}' in Resources")]
    NoSuchResource { file: String, logical_id: String },

    #[error("{file}: Resources.{logical_id}: not created in this stack: its Condition {condition} is false")]
    ResourceNotCreated {
        file: String,
        logical_id: String,
        condition: String,
    },
}

impl TemplateError {
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
            | TemplateError::TooDeep { path, .. } => Some(path),
            TemplateError::Read { .. }
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
