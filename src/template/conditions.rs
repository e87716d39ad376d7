//! The `Conditions` section: `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not` and
//! `Condition` references, evaluated with the dry run's parameter values.

use super::resolve::{child, index, scalar_text, Resolver};
use super::TemplateError;
use serde_json::Value;

impl Resolver<'_> {
    /// Evaluates the named condition once and remembers it. Errors inside it are reported
    /// at `Conditions.NAME...`, where the fix belongs; `path` is only used when the name
    /// itself is unknown.
    pub(super) fn condition_named(
        &mut self,
        name: &str,
        path: &str,
        depth: usize,
        function: &'static str,
    ) -> Result<bool, TemplateError> {
        if let Some(&known) = self.conditions.get(name) {
            return Ok(known);
        }
        let tpl = self.tpl;
        let Some(expr) = tpl.section("Conditions").get(name) else {
            return Err(self.unknown(path, function, "condition", name));
        };
        if self.evaluating.iter().any(|c| c == name) {
            let mut chain = self.evaluating.clone();
            chain.push(name.to_string());
            return Err(TemplateError::ConditionCycle {
                at: tpl.origin(),
                path: format!("Conditions.{name}"),
                chain: chain.join(" -> "),
            });
        }
        self.evaluating.push(name.to_string());
        let result = self.condition_expr(expr, &format!("Conditions.{name}"), depth + 1);
        self.evaluating.pop();
        let result = result?;
        self.conditions.insert(name.to_string(), result);
        Ok(result)
    }

    /// A condition function, whose arguments may use `Ref`, `Fn::FindInMap` and the like.
    pub(super) fn condition_expr(
        &mut self,
        expr: &Value,
        path: &str,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        self.check_depth(path, depth)?;
        let expected = "a condition function (Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition)";
        let (name, arg) = match expr {
            Value::Bool(b) => return Ok(*b),
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((name, arg)) => (name.as_str(), arg),
                None => return Err(self.invalid(path, &format!("expected {expected}"))),
            },
            other => {
                return Err(self.invalid(
                    path,
                    &format!("expected {expected}, got {}", super::compact(other)),
                ))
            }
        };
        let args = child(path, name);
        match name {
            "Condition" => match arg {
                Value::String(other) => self.condition_named(other, &args, depth + 1, "Condition"),
                _ => Err(self.invalid(&args, "Condition needs a condition name")),
            },
            "Fn::Equals" => match arg {
                Value::Array(items) if items.len() == 2 => {
                    let left = self.required(&items[0], &index(&args, 0), depth)?;
                    let right = self.required(&items[1], &index(&args, 1), depth)?;
                    Ok(equal(&left, &right))
                }
                _ => Err(self.invalid(&args, "Fn::Equals needs [value1, value2]")),
            },
            "Fn::And" | "Fn::Or" => match arg {
                Value::Array(items) if !items.is_empty() => {
                    // Evaluate every operand, not just up to the deciding one, so a broken
                    // operand is reported whichever parameter values the developer passed.
                    let mut results = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        results.push(self.condition_expr(item, &index(&args, i), depth + 1)?);
                    }
                    Ok(if name == "Fn::And" {
                        results.iter().all(|&b| b)
                    } else {
                        results.iter().any(|&b| b)
                    })
                }
                _ => Err(self.invalid(&args, &format!("{name} needs a list of conditions"))),
            },
            "Fn::Not" => match arg {
                Value::Array(items) if items.len() == 1 => {
                    Ok(!self.condition_expr(&items[0], &index(&args, 0), depth + 1)?)
                }
                _ => Err(self.invalid(&args, "Fn::Not needs [condition]")),
            },
            other => Err(self.invalid(path, &format!("expected {expected}, got {other}"))),
        }
    }
}

/// CloudFormation compares parameter values as strings, so `!Equals [!Ref Count, 1]` holds
/// when Count is "1".
fn equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y))
        }
        _ => match (scalar_text(left), scalar_text(right)) {
            (Some(a), Some(b)) => a == b,
            _ => left == right,
        },
    }
}
