//! Intrinsic function evaluation.
//!
//! `value` returns `Ok(None)` for `AWS::NoValue` so that the caller (the enclosing mapping
//! or list) can drop the key or item, which is what CloudFormation does.

use super::{compact, ResolveContext, Template, TemplateError};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Parsers cap document nesting at 128, but intrinsics add levels (each short tag becomes a
/// one-key mapping) and condition chains recurse through `Conditions`; this bound keeps
/// every input, even a hand-built `Value`, well inside a 2 MiB thread stack.
pub(super) const MAX_DEPTH: usize = 300;

/// Limit on `Fn::Cidr`'s count, as in CloudFormation; also stops a huge count from
/// allocating a huge list.
const MAX_CIDR_COUNT: u64 = 256;

/// Budget on the bytes resolution produces (strings counted as they are made, each level of
/// nesting again): far above any real Metadata (CloudFormation caps a template at 1 MB), far
/// below what hurts an instance. `Ref`/`Fn::Sub`/`Fn::Join` copy values, so a 1 MB template
/// could otherwise ask for gigabytes.
pub const MAX_RESOLVED_BYTES: usize = 32 << 20;

pub(super) type Resolved = Result<Option<Value>, TemplateError>;

type Handler<'a> = fn(&mut Resolver<'a>, &str, &Value, &str, usize) -> Resolved;

fn handler<'a>(name: &str) -> Option<Handler<'a>> {
    Some(match name {
        "Ref" => Resolver::fn_ref,
        "Fn::GetAtt" => Resolver::fn_get_att,
        "Fn::Sub" => Resolver::fn_sub,
        "Fn::Join" => Resolver::fn_join,
        "Fn::Select" => Resolver::fn_select,
        "Fn::Split" => Resolver::fn_split,
        "Fn::Base64" => Resolver::fn_base64,
        "Fn::GetAZs" => Resolver::fn_get_azs,
        "Fn::ImportValue" => Resolver::fn_import_value,
        "Fn::FindInMap" => Resolver::fn_find_in_map,
        "Fn::If" => Resolver::fn_if,
        "Fn::Equals" => Resolver::fn_condition,
        "Fn::And" => Resolver::fn_condition,
        "Fn::Or" => Resolver::fn_condition,
        "Fn::Not" => Resolver::fn_condition,
        "Fn::Length" => Resolver::fn_length,
        "Fn::ToJsonString" => Resolver::fn_to_json_string,
        "Fn::Cidr" => Resolver::fn_cidr,
        "Fn::Transform" => Resolver::fn_transform,
        _ => return None,
    })
}

pub(super) struct Resolver<'a> {
    pub(super) tpl: &'a Template,
    pub(super) ctx: &'a ResolveContext,
    /// Conditions already evaluated: each is evaluated once per resolution, like the stack.
    pub(super) conditions: HashMap<String, bool>,
    /// Conditions being evaluated, outermost first, to report cycles.
    pub(super) evaluating: Vec<String>,
    /// Bytes produced so far, against [`MAX_RESOLVED_BYTES`].
    produced: usize,
}

/// Approximate bytes of `v` in memory as text: strings and keys, plus a little per node.
fn size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(size).sum::<usize>() + 8,
        Value::Object(m) => m.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>() + 8,
        _ => 8,
    }
}

/// A parameter's value as CloudFormation hands it to `Ref` / `Fn::Sub`.
enum ParamValue {
    Scalar(String),
    List(Vec<String>),
}

impl<'a> Resolver<'a> {
    pub(super) fn new(tpl: &'a Template, ctx: &'a ResolveContext) -> Self {
        Resolver {
            tpl,
            ctx,
            conditions: HashMap::new(),
            evaluating: Vec::new(),
            produced: 0,
        }
    }

    /// Counts `bytes` about to be produced at `path`; an error once over the budget, before
    /// the allocation is made.
    pub(super) fn charge(&mut self, path: &str, bytes: usize) -> Result<(), TemplateError> {
        self.produced = self.produced.saturating_add(bytes);
        if self.produced > MAX_RESOLVED_BYTES {
            return Err(TemplateError::TooLarge {
                at: self.tpl.origin(),
                path: path.to_string(),
                limit: MAX_RESOLVED_BYTES,
            });
        }
        Ok(())
    }

    pub(super) fn value(&mut self, value: &Value, path: &str, depth: usize) -> Resolved {
        self.check_depth(path, depth)?;
        match value {
            Value::Object(map) => match single_intrinsic(map) {
                Some((name, arg)) => {
                    let resolved = self.intrinsic(name, arg, path, depth + 1)?;
                    // What a function returns is new (a copy of a parameter, a list from
                    // Fn::Split): counted, so that using it many times is.
                    if let Some(v) = &resolved {
                        self.charge(path, size(v))?;
                    }
                    Ok(resolved)
                }
                None => self.object(map, path, depth + 1),
            },
            Value::Array(items) => self.array(items, path, depth + 1),
            scalar => {
                self.charge(path, size(scalar))?;
                Ok(Some(scalar.clone()))
            }
        }
    }

    // `object` and `array` are separate from `value` to keep its frame, which every level
    // of nesting pays for, small.
    fn object(&mut self, map: &Map<String, Value>, path: &str, depth: usize) -> Resolved {
        let mut out = Map::with_capacity(map.len());
        for (key, item) in map {
            if let Some(resolved) = self.value(item, &child(path, key), depth)? {
                out.insert(key.clone(), resolved);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn array(&mut self, items: &[Value], path: &str, depth: usize) -> Resolved {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(resolved) = self.value(item, &index(path, i), depth)? {
                out.push(resolved);
            }
        }
        Ok(Some(Value::Array(out)))
    }

    pub(super) fn check_depth(&self, path: &str, depth: usize) -> Result<(), TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError::TooDeep {
                at: self.tpl.origin(),
                path: path.to_string(),
            });
        }
        Ok(())
    }

    /// `path` is where the function appears; its arguments live under `path.Fn::X`.
    ///
    /// Dispatches through a table so that this frame, which every nested intrinsic passes
    /// through, stays small: one big `match` with every function's temporaries inline
    /// costs kilobytes of stack per level in debug builds.
    fn intrinsic(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        match handler(name) {
            Some(handler) => handler(self, name, arg, path, depth),
            None if name.starts_with("Fn::ForEach") => {
                Err(self.unsupported(path, name.to_string()))
            }
            None => Err(self.invalid(path, &format!("unknown intrinsic function {name}"))),
        }
    }

    fn fn_ref(&mut self, _: &str, arg: &Value, path: &str, _: usize) -> Resolved {
        match arg {
            Value::String(target) => self.reference(target, path),
            _ => Err(self.invalid(path, "Ref needs a parameter or resource name")),
        }
    }

    fn fn_get_att(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.get_att(arg, &child(path, name), depth).map(Some)
    }

    fn fn_sub(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let text = self.sub(arg, &child(path, name), depth)?;
        Ok(Some(Value::String(text)))
    }

    fn fn_join(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.join(arg, &child(path, name), depth).map(Some)
    }

    fn fn_select(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.select(arg, &child(path, name), depth).map(Some)
    }

    fn fn_split(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.split(arg, &child(path, name), depth).map(Some)
    }

    fn fn_base64(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let text = self.string(arg, &child(path, name), depth, name)?;
        Ok(Some(Value::String(base64(text.as_bytes()))))
    }

    fn fn_get_azs(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.get_azs(arg, &child(path, name), depth).map(Some)
    }

    fn fn_import_value(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let export = self.string(arg, &child(path, name), depth, name)?;
        Ok(Some(Value::String(format!("<ImportValue:{export}>"))))
    }

    fn fn_find_in_map(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.find_in_map(arg, &child(path, name), depth).map(Some)
    }

    fn fn_if(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.if_branch(arg, &child(path, name), depth)
    }

    /// Condition functions used as values (outside `Conditions`) give a boolean.
    fn fn_condition(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let mut map = Map::with_capacity(1);
        map.insert(name.to_string(), arg.clone());
        let holds = self.condition_expr(&Value::Object(map), path, depth)?;
        Ok(Some(Value::Bool(holds)))
    }

    fn fn_length(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let items = self.list(arg, &child(path, name), depth, name)?;
        Ok(Some(Value::from(items.len())))
    }

    fn fn_to_json_string(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        let resolved = self.required(arg, &child(path, name), depth)?;
        Ok(Some(Value::String(compact(&resolved))))
    }

    fn fn_cidr(&mut self, name: &str, arg: &Value, path: &str, depth: usize) -> Resolved {
        self.cidr(arg, &child(path, name), depth).map(Some)
    }

    fn fn_transform(&mut self, name: &str, arg: &Value, path: &str, _: usize) -> Resolved {
        Err(self.unsupported(path, format!("{name} {}", compact(arg))))
    }

    /// `Ref` and the names `Fn::Sub` looks up: pseudo parameter, parameter, or resource.
    pub(super) fn reference(&mut self, name: &str, path: &str) -> Resolved {
        let ctx = self.ctx;
        let s = |v: &str| Ok(Some(Value::String(v.to_string())));
        match name {
            "AWS::StackName" => return s(&ctx.stack_name),
            "AWS::Region" => return s(&ctx.region),
            "AWS::AccountId" => return s(&ctx.account_id),
            "AWS::StackId" => return s(&ctx.stack_id),
            "AWS::Partition" => return s(&ctx.partition),
            "AWS::URLSuffix" => return s(&ctx.url_suffix),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            "AWS::NoValue" => return Ok(None),
            _ => {}
        }
        if self.tpl.section("Parameters").contains_key(name) {
            return Ok(Some(match self.parameter(name, path)? {
                ParamValue::Scalar(v) => Value::String(v),
                ParamValue::List(items) => {
                    Value::Array(items.into_iter().map(Value::String).collect())
                }
            }));
        }
        if self.tpl.section("Resources").contains_key(name) {
            return s(&format!("<{name}>"));
        }
        Err(self.unknown(path, "Ref", "parameter or resource", name))
    }

    fn parameter(&self, name: &str, path: &str) -> Result<ParamValue, TemplateError> {
        let empty = Map::new();
        let decl = self.tpl.section("Parameters").get(name);
        let decl = decl.and_then(Value::as_object).unwrap_or(&empty);
        let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
        let ssm_inner = ty
            .strip_prefix("AWS::SSM::Parameter::Value<")
            .and_then(|t| t.strip_suffix('>'));
        let list_type = |t: &str| t.starts_with("List<") || t == "CommaDelimitedList";
        let is_list = list_type(ssm_inner.unwrap_or(ty));
        let default = match decl.get("Default") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(scalar_text)
                    .collect::<Option<Vec<_>>>()
                    .map(|parts| parts.join(","))
                    .ok_or_else(|| {
                        self.invalid(&format!("Parameters.{name}.Default"), "must be a string")
                    })?,
            ),
            Some(v) => Some(scalar_text(v).ok_or_else(|| {
                self.invalid(&format!("Parameters.{name}.Default"), "must be a string")
            })?),
        };
        let raw = match (self.ctx.params.get(name), ssm_inner) {
            (Some(v), _) => v.clone(),
            // The stack would read the SSM parameter named by the value; we cannot, so show
            // which one it would read.
            (None, Some(_)) => {
                let placeholder = format!("<ssm:{}>", default.as_deref().unwrap_or(name));
                return Ok(if is_list {
                    ParamValue::List(vec![placeholder])
                } else {
                    ParamValue::Scalar(placeholder)
                });
            }
            (None, None) => default.ok_or_else(|| TemplateError::MissingParameter {
                at: self.tpl.origin(),
                path: path.to_string(),
                name: name.to_string(),
            })?,
        };
        if is_list {
            // CloudFormation trims spaces around list members; an empty value is no members.
            let items = if raw.trim().is_empty() {
                Vec::new()
            } else {
                raw.split(',').map(|s| s.trim().to_string()).collect()
            };
            return Ok(ParamValue::List(items));
        }
        if let Some(Value::Array(allowed)) = decl.get("AllowedValues") {
            if !allowed
                .iter()
                .any(|a| scalar_text(a).as_deref() == Some(raw.as_str()))
            {
                return Err(TemplateError::DisallowedValue {
                    at: self.tpl.origin(),
                    path: path.to_string(),
                    name: name.to_string(),
                    value: raw,
                    allowed: allowed
                        .iter()
                        .map(|a| scalar_text(a).unwrap_or_else(|| compact(a)))
                        .collect(),
                });
            }
        }
        Ok(ParamValue::Scalar(raw))
    }

    /// A parameter's value where only a string will do (`${Param}` in `Fn::Sub`).
    pub(super) fn scalar_parameter(&self, name: &str, path: &str) -> Result<String, TemplateError> {
        match self.parameter(name, path)? {
            ParamValue::Scalar(v) => Ok(v),
            ParamValue::List(_) => Err(self.invalid(
                path,
                &format!("Fn::Sub cannot use list parameter {name}; use Fn::Join"),
            )),
        }
    }

    fn get_att(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let (resource, attribute) = match arg {
            Value::String(s) => match s.split_once('.') {
                Some((r, a)) => (r.to_string(), a.to_string()),
                None => return Err(self.invalid(path, "Fn::GetAtt needs LogicalId.Attribute")),
            },
            Value::Array(items) if items.len() == 2 => {
                let Value::String(resource) = &items[0] else {
                    return Err(self.invalid(&index(path, 0), "must be a resource logical id"));
                };
                // CloudFormation allows the attribute name to come from a `Ref`.
                let attribute = self.string(&items[1], &index(path, 1), depth + 1, "Fn::GetAtt")?;
                (resource.clone(), attribute)
            }
            _ => return Err(self.invalid(path, "Fn::GetAtt needs [LogicalId, Attribute]")),
        };
        self.attribute(&resource, &attribute, path, "Fn::GetAtt")
            .map(Value::String)
    }

    /// The placeholder for a resource attribute; the resource must exist.
    pub(super) fn attribute(
        &self,
        resource: &str,
        attribute: &str,
        path: &str,
        function: &'static str,
    ) -> Result<String, TemplateError> {
        if !self.tpl.section("Resources").contains_key(resource) {
            return Err(self.unknown(path, function, "resource", resource));
        }
        Ok(format!("<{resource}.{attribute}>"))
    }

    fn join(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let [delimiter, items] =
            self.args::<2>(arg, path, "Fn::Join", "[delimiter, [values...]]")?;
        let delimiter = self.string(delimiter, &index(path, 0), depth, "Fn::Join")?;
        let items_path = index(path, 1);
        let items = self.list(items, &items_path, depth, "Fn::Join")?;
        let parts = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_text(item).ok_or_else(|| {
                    self.invalid(
                        &index(&items_path, i),
                        &format!("Fn::Join values must be strings, got {}", compact(item)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let joined = parts.iter().map(String::len).sum::<usize>()
            + delimiter
                .len()
                .saturating_mul(parts.len().saturating_sub(1));
        self.charge(path, joined)?;
        Ok(Value::String(parts.join(&delimiter)))
    }

    fn select(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let [position, items] = self.args::<2>(arg, path, "Fn::Select", "[index, [values...]]")?;
        let position = self.count(position, &index(path, 0), depth, "Fn::Select index")?;
        let items = self.list(items, &index(path, 1), depth, "Fn::Select")?;
        let len = items.len();
        usize::try_from(position)
            .ok()
            .and_then(|p| items.into_iter().nth(p))
            .ok_or_else(|| {
                self.invalid(
                    path,
                    &format!("Fn::Select index {position} is out of range for a list of {len}"),
                )
            })
    }

    fn split(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let [delimiter, source] = self.args::<2>(arg, path, "Fn::Split", "[delimiter, string]")?;
        let delimiter = self.string(delimiter, &index(path, 0), depth, "Fn::Split")?;
        if delimiter.is_empty() {
            return Err(self.invalid(&index(path, 0), "Fn::Split delimiter is empty"));
        }
        let source = self.string(source, &index(path, 1), depth, "Fn::Split")?;
        Ok(Value::Array(
            source
                .split(delimiter.as_str())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ))
    }

    fn get_azs(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let region = match arg {
            Value::Null => String::new(),
            other => self.string(other, path, depth, "Fn::GetAZs")?,
        };
        let region = if region.is_empty() {
            self.ctx.region.clone()
        } else {
            region
        };
        Ok(Value::Array(
            ["a", "b", "c"]
                .iter()
                .map(|zone| Value::String(format!("{region}{zone}")))
                .collect(),
        ))
    }

    fn find_in_map(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Value, TemplateError> {
        let usage = "[MapName, TopLevelKey, SecondLevelKey]";
        let items = match arg {
            Value::Array(items) if items.len() == 3 || items.len() == 4 => items,
            _ => return Err(self.invalid(path, &format!("Fn::FindInMap needs {usage}"))),
        };
        let map_name = self.string(&items[0], &index(path, 0), depth, "Fn::FindInMap")?;
        let top = self.string(&items[1], &index(path, 1), depth, "Fn::FindInMap")?;
        let second = self.string(&items[2], &index(path, 2), depth, "Fn::FindInMap")?;
        let missing = |message: String| TemplateError::MissingMapping {
            at: self.tpl.origin(),
            path: path.to_string(),
            message,
        };
        let found = match self.tpl.section("Mappings").get(&map_name) {
            None => Err(missing(format!("no mapping '{map_name}' in Mappings"))),
            Some(mapping) => match mapping.get(&top) {
                None => Err(missing(format!("mapping '{map_name}' has no key '{top}'"))),
                Some(entry) => entry.get(&second).cloned().ok_or_else(|| {
                    missing(format!(
                        "mapping '{map_name}' key '{top}' has no key '{second}'"
                    ))
                }),
            },
        };
        // The fourth argument is the AWS::LanguageExtensions `{DefaultValue: x}` form.
        match (found, items.get(3)) {
            (Ok(v), _) => Ok(v),
            (Err(e), None) => Err(e),
            (Err(_), Some(Value::Object(opts)))
                if opts.len() == 1 && opts.contains_key("DefaultValue") =>
            {
                self.required(
                    &opts["DefaultValue"],
                    &child(&index(path, 3), "DefaultValue"),
                    depth + 1,
                )
            }
            (Err(_), Some(_)) => {
                Err(self.invalid(&index(path, 3), "must be {DefaultValue: value}"))
            }
        }
    }

    fn if_branch(&mut self, arg: &Value, path: &str, depth: usize) -> Resolved {
        let [condition, when_true, when_false] = self.args::<3>(
            arg,
            path,
            "Fn::If",
            "[ConditionName, ValueIfTrue, ValueIfFalse]",
        )?;
        let Value::String(condition) = condition else {
            return Err(self.invalid(&index(path, 0), "Fn::If needs a condition name"));
        };
        let (chosen, branch) =
            if self.condition_named(condition, &index(path, 0), depth, "Fn::If")? {
                (1, when_true)
            } else {
                (2, when_false)
            };
        self.value(branch, &index(path, chosen), depth + 1)
    }

    fn cidr(&mut self, arg: &Value, path: &str, depth: usize) -> Result<Value, TemplateError> {
        let [block, count, bits] =
            self.args::<3>(arg, path, "Fn::Cidr", "[ipBlock, count, cidrBits]")?;
        let block = self.string(block, &index(path, 0), depth, "Fn::Cidr")?;
        let count = self.count(count, &index(path, 1), depth, "Fn::Cidr count")?;
        // Validated only for range: the placeholder does not depend on it.
        let bits = self.count(bits, &index(path, 2), depth, "Fn::Cidr cidrBits")?;
        if !(1..=MAX_CIDR_COUNT).contains(&count) {
            return Err(self.invalid(&index(path, 1), "Fn::Cidr count must be 1 to 256"));
        }
        if !(1..=128).contains(&bits) {
            return Err(self.invalid(&index(path, 2), "Fn::Cidr cidrBits must be 1 to 128"));
        }
        Ok(Value::Array(
            (0..count)
                .map(|i| Value::String(format!("<Cidr:{block}[{i}]>")))
                .collect(),
        ))
    }

    // ---- argument helpers ----

    /// Splits a fixed-arity argument list; the intrinsic must be given a literal list.
    fn args<'v, const N: usize>(
        &self,
        arg: &'v Value,
        path: &str,
        function: &str,
        usage: &str,
    ) -> Result<[&'v Value; N], TemplateError> {
        match arg {
            Value::Array(items) if items.len() == N => Ok(std::array::from_fn(|i| &items[i])),
            _ => Err(self.invalid(path, &format!("{function} needs {usage}"))),
        }
    }

    /// Resolves an argument that may not be `AWS::NoValue`.
    pub(super) fn required(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Value, TemplateError> {
        self.value(arg, path, depth + 1)?
            .ok_or_else(|| self.invalid(path, "AWS::NoValue cannot be used here"))
    }

    /// Resolves an argument to a string (numbers and booleans are accepted as text).
    pub(super) fn string(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
        function: &str,
    ) -> Result<String, TemplateError> {
        let resolved = self.required(arg, path, depth)?;
        scalar_text(&resolved).ok_or_else(|| {
            self.invalid(
                path,
                &format!("{function} needs a string here, got {}", compact(&resolved)),
            )
        })
    }

    fn list(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
        function: &str,
    ) -> Result<Vec<Value>, TemplateError> {
        match self.required(arg, path, depth)? {
            Value::Array(items) => Ok(items),
            other => Err(self.invalid(
                path,
                &format!("{function} needs a list here, got {}", compact(&other)),
            )),
        }
    }

    /// A non-negative integer given as a number or a numeric string (parameters are strings).
    fn count(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
        what: &str,
    ) -> Result<u64, TemplateError> {
        let resolved = self.required(arg, path, depth)?;
        let n = match &resolved {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        n.ok_or_else(|| {
            self.invalid(
                path,
                &format!(
                    "{what} must be a non-negative integer, got {}",
                    compact(&resolved)
                ),
            )
        })
    }

    // ---- errors ----

    pub(super) fn invalid(&self, path: &str, message: &str) -> TemplateError {
        TemplateError::Invalid {
            at: self.tpl.origin(),
            path: path.to_string(),
            message: message.to_string(),
        }
    }

    pub(super) fn unknown(
        &self,
        path: &str,
        function: &'static str,
        kind: &'static str,
        name: &str,
    ) -> TemplateError {
        TemplateError::UnknownName {
            at: self.tpl.origin(),
            path: path.to_string(),
            function,
            kind,
            name: name.to_string(),
        }
    }

    fn unsupported(&self, path: &str, what: String) -> TemplateError {
        TemplateError::Unsupported {
            at: self.tpl.origin(),
            path: path.to_string(),
            what,
        }
    }
}

/// A one-key mapping whose key names an intrinsic. `Condition` is left out on purpose: as
/// a key it is ordinary data (a resource attribute, or user metadata) outside `Conditions`.
fn single_intrinsic(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    if map.len() != 1 {
        return None;
    }
    let (name, arg) = map.iter().next()?;
    (name == "Ref" || name.starts_with("Fn::")).then_some((name.as_str(), arg))
}

/// Text of a scalar as CloudFormation stringifies it; `None` for lists, maps and null.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Standard base64 with padding (RFC 4648), as `Fn::Base64` produces.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
