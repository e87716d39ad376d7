//! Where the resource's Metadata comes from: the stack (DescribeStackResource) on an instance,
//! or a local template in a dry run.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::template::{ResolveContext, Template};

#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    pub resource_type: Option<String>,
    pub metadata: Value,
    /// Where it came from, for the log and the plan.
    pub origin: String,
}

/// The resource types whose instances are ECS container instances in a classic stack.
const EXPECTED_TYPES: &[&str] = &[
    "AWS::AutoScaling::LaunchConfiguration",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::Instance",
];

pub async fn from_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    resource: &str,
) -> Result<ResourceMetadata> {
    let out = cfn
        .describe_stack_resource()
        .stack_name(stack)
        .logical_resource_id(resource)
        .send()
        .await
        .map_err(|e| Error::Aws {
            api: "cloudformation:DescribeStackResource",
            message: utf8_hint(crate::aws::describe_sdk_error(&e), resource),
        })?;
    let detail = out.stack_resource_detail().ok_or_else(|| Error::Aws {
        api: "cloudformation:DescribeStackResource",
        message: "the answer has no StackResourceDetail".into(),
    })?;
    let metadata = decode(detail.metadata(), &format!("{stack}/{resource}.Metadata"))?;
    let resource_type = detail.resource_type().map(str::to_string);
    warn_on_type(resource, resource_type.as_deref());
    Ok(ResourceMetadata {
        resource_type,
        metadata,
        origin: format!("stack {stack}, resource {resource} (DescribeStackResource)"),
    })
}

/// The SDK refuses an answer that is not UTF-8 as a whole ("error parsing XML: invalid utf-8
/// sequence ... from index N"); the resource's Metadata is the free text that can make it so.
fn utf8_hint(message: String, resource: &str) -> String {
    if message.to_ascii_lowercase().contains("invalid utf-8") {
        format!("{message} (the answer is not valid UTF-8: check {resource}'s Metadata)")
    } else {
        message
    }
}

/// Far above what CloudFormation accepts in a template (1 MB), so only garbage is refused; the
/// cap keeps a runaway document from exhausting a small instance's memory. Higher than a local
/// template's: this is JSON only (no aliases, no intrinsics left to expand), and the fault
/// tests write an 8 MiB file through it.
pub const MAX_METADATA_BYTES: usize = 32 * 1024 * 1024;

/// The API returns Metadata as a JSON string: it is decoded a second time here. `path` names
/// it in errors (`stack/Resource.Metadata`).
pub fn decode(text: Option<&str>, path: &str) -> Result<Value> {
    match text {
        Some(text) if text.len() > MAX_METADATA_BYTES => Err(Error::invalid(
            path,
            format!(
                "is {} bytes, more than the {} MiB ecs-bootstrap accepts",
                text.len(),
                MAX_METADATA_BYTES / (1024 * 1024)
            ),
        )),
        Some(text) if !text.trim().is_empty() => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| Error::invalid(path, format!("is not valid JSON: {e}")))?;
            if !v.is_object() {
                return Err(Error::invalid(
                    path,
                    format!("must be a JSON object, got {}", crate::input::kind(&v)),
                ));
            }
            Ok(v)
        }
        _ => Ok(Value::Object(Default::default())),
    }
}

pub fn from_template(
    template: &Template,
    source: &str,
    resource: &str,
    ctx: &ResolveContext,
) -> Result<ResourceMetadata> {
    let Some(resource_type) = template.resource_type(resource) else {
        return Err(Error::invalid(
            format!("Resources.{resource}"),
            format!(
                "no such resource in {source} (resources: {})",
                template.resource_ids().join(", ")
            ),
        ));
    };
    let resource_type = resource_type.to_string();
    let metadata = template.resource_metadata(resource, ctx)?;
    warn_on_type(resource, Some(&resource_type));
    Ok(ResourceMetadata {
        resource_type: Some(resource_type),
        metadata,
        origin: format!("template {source}, resource {resource}"),
    })
}

fn warn_on_type(resource: &str, resource_type: Option<&str>) {
    if let Some(t) = resource_type {
        if !EXPECTED_TYPES.contains(&t) {
            tracing::warn!(
                resource,
                resource_type = t,
                "not a launch configuration or launch template; reading its Metadata anyway"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_metadata_is_named_and_refused() {
        let p = "s/Lc.Metadata";
        assert_eq!(decode(None, p).unwrap(), Value::Object(Default::default()));
        let e = decode(Some("{\"a\": [1,"), p).unwrap_err().to_string();
        assert!(e.starts_with("s/Lc.Metadata: is not valid JSON"), "{e}");
        let e = decode(Some("[1]"), p).unwrap_err().to_string();
        assert!(e.contains("must be a JSON object"), "{e}");
        // 100 MB of content: refused by size before any parsing.
        let huge = format!("{{\"c\": \"{}\"}}", "x".repeat(100 * 1024 * 1024));
        let e = decode(Some(&huge), p).unwrap_err().to_string();
        assert!(e.contains("s/Lc.Metadata") && e.contains("bytes"), "{e}");
    }

    #[test]
    fn a_non_utf8_answer_points_at_the_metadata() {
        let m = utf8_hint(
            "error parsing XML: invalid utf-8 sequence of 1 bytes from index 664".into(),
            "Lc",
        );
        assert!(
            m.ends_with("(the answer is not valid UTF-8: check Lc's Metadata)"),
            "{m}"
        );
        assert_eq!(
            utf8_hint("Throttling: Rate exceeded".into(), "Lc"),
            "Throttling: Rate exceeded"
        );
    }
}
