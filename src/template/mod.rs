//! Local CloudFormation template reader for `--dry-run --template`.
//!
//! On a developer's laptop there is no stack, so this reads the template file and resolves
//! intrinsic functions the way CloudFormation would for one stack. Values that only exist
//! after deployment become readable placeholders:
//!
//! | source                               | result                              |
//! |--------------------------------------|-------------------------------------|
//! | `Ref` to a resource                  | `"<LogicalId>"`                     |
//! | `Fn::GetAtt` / `${Res.Attr}`         | `"<LogicalId.Attr>"`                |
//! | `Fn::ImportValue`                    | `"<ImportValue:NAME>"`              |
//! | SSM parameter type without `--param` | `"<ssm:DEFAULT>"` (`["<ssm:...>"]` for list types) |
//! | `Fn::Cidr`                           | `["<Cidr:BLOCK[0]>", ...]`          |
//! | `Fn::GetAZs`                         | `["<region>a", "<region>b", "<region>c"]` |

mod conditions;
pub mod discover;
mod error;
mod locate;
mod resolve;
mod sub;
mod yaml;
mod yaml_budget;

#[cfg(test)]
mod tests;

pub use error::{Origin, TemplateError};

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A parsed template: JSON, or YAML with short tags rewritten to their long
/// `{"Fn::X": ...}` / `{"Ref": ...}` / `{"Condition": ...}` forms.
#[derive(Debug, Clone)]
pub struct Template {
    /// File name (or other label) used to prefix every error.
    source: String,
    /// Kept to find the line of an error's key path: values carry no positions.
    text: String,
    root: Map<String, Value>,
}

/// The stack a dry run pretends to be: pseudo parameters plus `--param` values.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub url_suffix: String,
    pub stack_id: String,
    /// `--param K=V`; list-typed parameters are comma-separated, as in CloudFormation.
    pub params: BTreeMap<String, String>,
}

impl ResolveContext {
    /// A plausible stack in `region` with account 123456789012 and an all-zero stack UUID.
    pub fn fake(stack_name: &str, region: &str) -> Self {
        // The China and GovCloud partitions have their own ARN prefix and endpoint suffix;
        // getting them right keeps `${AWS::Partition}`-built ARNs realistic there too.
        let (partition, url_suffix) = if region.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if region.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else {
            ("aws", "amazonaws.com")
        };
        let account_id = "123456789012";
        ResolveContext {
            stack_name: stack_name.to_string(),
            region: region.to_string(),
            account_id: account_id.to_string(),
            partition: partition.to_string(),
            url_suffix: url_suffix.to_string(),
            stack_id: format!(
                "arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            params: BTreeMap::new(),
        }
    }
}

/// Sections that CloudFormation requires to be mappings; checking them once at parse time
/// lets the accessors below treat a wrong shape as "absent" without losing the error.
const MAPPING_SECTIONS: [&str; 6] = [
    "Parameters",
    "Mappings",
    "Conditions",
    "Resources",
    "Outputs",
    "Metadata",
];

/// CloudFormation accepts templates up to 1 MB (from S3); a local template four times that is
/// not one, and refusing it bounds what the parsers and the resolver can be asked to do.
pub const MAX_TEMPLATE_BYTES: usize = 4 << 20;

impl Template {
    /// Reads and parses `path`; errors name the path.
    pub fn from_path(path: &Path) -> Result<Template, TemplateError> {
        use std::io::Read as _;
        let read_error = |source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        };
        // Read at most one byte over the cap: a huge (or endless, /dev/zero) file is refused
        // without being read whole.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(MAX_TEMPLATE_BYTES as u64 + 1)
                    .read_to_string(&mut text)
            })
            .map_err(read_error)?;
        Template::parse(&text, &path.display().to_string())
    }

    /// Parses template text. `source` labels errors (normally the file name).
    pub fn parse(text: &str, source: &str) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooBig {
                file: source.to_string(),
                size: text.len() as u64,
                limit: MAX_TEMPLATE_BYTES,
            });
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root = if text.trim_start().starts_with('{') {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => v,
                // Too deep for JSON is too deep: the YAML parser is quadratic on deep nesting
                // (80k `[` took 51 s) and would refuse it at 128 levels anyway.
                Err(json_err) if json_err.to_string().contains("recursion limit exceeded") => {
                    return Err(TemplateError::Syntax {
                        file: source.to_string(),
                        line: Some(json_err.line()),
                        column: Some(json_err.column()),
                        message: format!("invalid JSON: {json_err}"),
                    })
                }
                // A leading '{' may also be a YAML flow mapping; only if that fails too is
                // the JSON error the better explanation.
                Err(json_err) => yaml::parse(text, source).map_err(|_| TemplateError::Syntax {
                    file: source.to_string(),
                    line: Some(json_err.line()),
                    column: Some(json_err.column()),
                    message: format!("invalid JSON: {json_err}"),
                })?,
            }
        } else {
            yaml::parse(text, source)?
        };
        let Value::Object(root) = root else {
            return Err(TemplateError::Invalid {
                at: Origin {
                    file: source.to_string(),
                    line: None,
                },
                path: "(top level)".to_string(),
                message: "a template must be a mapping with a Resources section".to_string(),
            });
        };
        let template = Template {
            source: source.to_string(),
            text: text.to_string(),
            root,
        };
        template.validate().map_err(|e| template.locate(e))?;
        Ok(template)
    }

    fn validate(&self) -> Result<(), TemplateError> {
        let invalid = |path: String, message: &str| TemplateError::Invalid {
            at: self.origin(),
            path,
            message: message.to_string(),
        };
        if let Some(transform) = self.root.get("Transform") {
            // Macros such as AWS::Serverless rewrite the template server-side; resolving the
            // untransformed text would show the developer something the stack never does.
            return Err(TemplateError::Unsupported {
                at: self.origin(),
                path: "Transform".to_string(),
                what: format!("template Transform {}", compact(transform)),
            });
        }
        for section in MAPPING_SECTIONS {
            match self.root.get(section) {
                None | Some(Value::Object(_)) => {}
                Some(_) => return Err(invalid(section.to_string(), "must be a mapping")),
            }
        }
        if !self.root.contains_key("Resources") {
            return Err(invalid(
                "Resources".to_string(),
                "missing: this does not look like a CloudFormation template",
            ));
        }
        for (id, resource) in self.section("Resources") {
            let path = format!("Resources.{id}");
            let Value::Object(resource) = resource else {
                return Err(invalid(path, "a resource must be a mapping"));
            };
            if !matches!(resource.get("Type"), Some(Value::String(_))) {
                return Err(invalid(format!("{path}.Type"), "missing or not a string"));
            }
            if !matches!(resource.get("Condition"), None | Some(Value::String(_))) {
                return Err(invalid(
                    format!("{path}.Condition"),
                    "must be the name of a condition",
                ));
            }
        }
        for (name, param) in self.section("Parameters") {
            let path = format!("Parameters.{name}");
            let Value::Object(param) = param else {
                return Err(invalid(path, "a parameter must be a mapping"));
            };
            if !matches!(param.get("Type"), Some(Value::String(_))) {
                return Err(invalid(format!("{path}.Type"), "missing or not a string"));
            }
        }
        Ok(())
    }

    /// The `Type` of a resource, e.g. `AWS::AutoScaling::LaunchConfiguration`.
    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?.get("Type")?.as_str()
    }

    /// Logical ids of all resources, in template order.
    pub fn resource_ids(&self) -> Vec<&str> {
        self.section("Resources")
            .keys()
            .map(String::as_str)
            .collect()
    }

    /// Names of all declared parameters, in template order.
    pub fn parameter_names(&self) -> Vec<&str> {
        self.section("Parameters")
            .keys()
            .map(String::as_str)
            .collect()
    }

    /// The values of `NoEcho` parameters (given with `--param`, else their Default), for
    /// redaction: CloudFormation masks them, and the dry run must not show them either.
    pub fn no_echo_values(&self, ctx: &ResolveContext) -> Vec<String> {
        let mut out = Vec::new();
        for (name, decl) in self.section("Parameters") {
            let no_echo = match decl.get("NoEcho") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
            if !no_echo {
                continue;
            }
            let value = match ctx.params.get(name) {
                Some(v) => Some(v.clone()),
                None => decl.get("Default").and_then(|d| match d {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
            };
            if let Some(v) = value {
                // A list parameter's members each appear alone once resolved.
                out.extend(v.split(',').map(|m| m.trim().to_string()));
                out.push(v);
            }
        }
        out
    }

    /// `--param` names the template does not declare, so the CLI can flag likely typos
    /// (CloudFormation itself rejects them).
    pub fn unknown_params<'c>(&self, ctx: &'c ResolveContext) -> Vec<&'c str> {
        let declared = self.section("Parameters");
        ctx.params
            .keys()
            .filter(|k| !declared.contains_key(k.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// The resource's `Metadata` with every intrinsic resolved (what DescribeStackResource
    /// would return, decoded). `Value::Null` when the resource has no metadata.
    ///
    /// Errors if the resource's own `Condition` is false: such an instance never exists.
    pub fn resource_metadata(
        &self,
        logical_id: &str,
        ctx: &ResolveContext,
    ) -> Result<Value, TemplateError> {
        self.metadata_unlocated(logical_id, ctx)
            .map_err(|e| self.locate(e))
    }

    fn metadata_unlocated(
        &self,
        logical_id: &str,
        ctx: &ResolveContext,
    ) -> Result<Value, TemplateError> {
        let Some(resource) = self.resource(logical_id) else {
            return Err(TemplateError::NoSuchResource {
                file: self.source.clone(),
                logical_id: logical_id.to_string(),
            });
        };
        let mut resolver = resolve::Resolver::new(self, ctx);
        let path = format!("Resources.{logical_id}");
        if let Some(Value::String(condition)) = resource.get("Condition") {
            let cond_path = format!("{path}.Condition");
            if !resolver.condition_named(condition, &cond_path, 0, "Condition")? {
                return Err(TemplateError::ResourceNotCreated {
                    at: Origin {
                        file: self.source.clone(),
                        line: locate::line_of(&self.text, &self.root, &cond_path),
                    },
                    logical_id: logical_id.to_string(),
                    condition: condition.clone(),
                });
            }
        }
        match resource.get("Metadata") {
            None => Ok(Value::Null),
            Some(metadata) => Ok(resolver
                .value(metadata, &format!("{path}.Metadata"), 0)?
                .unwrap_or(Value::Null)),
        }
    }

    /// Resolves an arbitrary fragment (e.g. a resource's `UserData`). A fragment that is
    /// only `AWS::NoValue` resolves to `Value::Null`. Error paths start at `(fragment)`.
    pub fn resolve(&self, value: &Value, ctx: &ResolveContext) -> Result<Value, TemplateError> {
        // Errors inside the fragment have no line, but those in Conditions it uses do.
        let resolved = resolve::Resolver::new(self, ctx)
            .value(value, "(fragment)", 0)
            .map_err(|e| self.locate(e))?;
        Ok(resolved.unwrap_or(Value::Null))
    }

    /// The raw, unresolved template (tags already in long form), for callers that need to
    /// pick out fragments such as `Resources.X.Properties.UserData` before [`Self::resolve`].
    pub fn raw(&self) -> &Map<String, Value> {
        &self.root
    }

    /// Where a key path inside resource `logical_id`'s Metadata (`ecs-bootstrap.Cluster`) is
    /// written: this file, and the line of the deepest of its keys found in the text. `None`
    /// when the path does not start with one of the Metadata's keys, so no line is pinned on
    /// an error that is not about the Metadata.
    pub fn metadata_origin(&self, logical_id: &str, key_path: &str) -> Option<Origin> {
        let metadata = self.resource(logical_id)?.get("Metadata")?.as_object()?;
        let inside = metadata.keys().any(|k| {
            key_path
                .strip_prefix(k.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        });
        inside.then(|| Origin {
            file: self.source.clone(),
            line: locate::line_of(
                &self.text,
                &self.root,
                &format!("Resources.{logical_id}.Metadata.{key_path}"),
            ),
        })
    }

    fn origin(&self) -> Origin {
        Origin {
            file: self.source.clone(),
            line: None,
        }
    }

    /// Fills in the line of the error's key path, when it can be found in the text.
    fn locate(&self, mut error: TemplateError) -> TemplateError {
        if let Some((at, path)) = error.origin_and_path() {
            if at.line.is_none() {
                at.line = locate::line_of(&self.text, &self.root, path);
            }
        }
        error
    }

    fn resource(&self, logical_id: &str) -> Option<&Map<String, Value>> {
        self.section("Resources").get(logical_id)?.as_object()
    }

    /// A top-level section, empty when absent (shape was checked in `validate`).
    fn section(&self, name: &str) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.root.get(name) {
            Some(Value::Object(map)) => map,
            _ => EMPTY.get_or_init(Map::new),
        }
    }
}

/// Compact JSON for error messages.
fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "?".to_string())
}
