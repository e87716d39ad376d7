//! Which resources of a local template a dry run is about, when the command line does not say:
//! the launch resource carrying the `ecs-bootstrap:` block, and the Auto Scaling group that
//! launches from it (the one that waits for the signal).

use serde_json::Value;

use super::Template;
use crate::config::settings;
use crate::error::Error;

/// Without `--resource`: the one resource whose Metadata carries an `ecs-bootstrap` block.
pub fn bootstrap_resource(template: &Template, source: &str) -> Result<String, Error> {
    let resources = template.raw().get("Resources").and_then(Value::as_object);
    let found: Vec<&String> = resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| {
            r.get("Metadata")
                .and_then(|m| m.get(settings::BLOCK))
                .is_some()
        })
        .map(|(id, _)| id)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Usage(format!(
            "no resource in {source} has an 'ecs-bootstrap' block in its Metadata: pass --resource"
        ))),
        many => Err(Error::Usage(format!(
            "several resources in {source} have an 'ecs-bootstrap' block ({}): pass --resource",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Without `--signal-resource`: the Auto Scaling group that launches from `resource`.
pub fn signal_resource(template: &Template, resource: &str) -> Result<String, Error> {
    let resources = template.raw().get("Resources").and_then(Value::as_object);
    let groups: Vec<&String> = resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| {
            r.get("Type").and_then(Value::as_str) == Some("AWS::AutoScaling::AutoScalingGroup")
                && r.get("Properties").is_some_and(|p| refers_to(p, resource))
        })
        .map(|(id, _)| id)
        .collect();
    match groups.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(Error::Usage(format!(
            "cannot tell which Auto Scaling group launches from {resource}: pass --signal-resource"
        ))),
    }
}

fn refers_to(v: &Value, id: &str) -> bool {
    match v {
        Value::Object(m) => {
            m.get("Ref").and_then(Value::as_str) == Some(id)
                || m.get("Fn::GetAtt")
                    .and_then(|g| g.get(0))
                    .and_then(Value::as_str)
                    == Some(id)
                || m.values().any(|x| refers_to(x, id))
        }
        Value::Array(a) => a.iter().any(|x| refers_to(x, id)),
        _ => false,
    }
}
