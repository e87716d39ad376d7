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
            message: crate::aws::describe_sdk_error(&e),
        })?;
    let detail = out.stack_resource_detail().ok_or_else(|| Error::Aws {
        api: "cloudformation:DescribeStackResource",
        message: "the answer has no StackResourceDetail".into(),
    })?;
    // The API returns Metadata as a JSON string: it is decoded a second time here.
    let metadata = match detail.metadata() {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).map_err(|e| {
            Error::invalid(
                format!("{stack}/{resource}.Metadata"),
                format!("is not valid JSON: {e}"),
            )
        })?,
        _ => Value::Object(Default::default()),
    };
    let resource_type = detail.resource_type().map(str::to_string);
    warn_on_type(resource, resource_type.as_deref());
    Ok(ResourceMetadata {
        resource_type,
        metadata,
        origin: format!("stack {stack}, resource {resource} (DescribeStackResource)"),
    })
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
