//! Zero-config: which stack, launch resource and Auto Scaling group this instance belongs to,
//! when `--stack` / `--resource` / `--signal-resource` are not given.
//!
//! CloudFormation tags the instances of a stack's Auto Scaling group with
//! `aws:cloudformation:stack-name`, `aws:cloudformation:logical-id` (the group's) and
//! `aws:autoscaling:groupName`. They are read, in order of cost:
//!
//! 1. from IMDS (`meta-data/tags/instance/<key>`): no API call, no permission, but only when the
//!    launch template enables instance metadata tags (launch configurations cannot);
//! 2. else from the APIs: `autoscaling:DescribeAutoScalingInstances` (group, and its launch
//!    configuration / template) then `cloudformation:DescribeStackResources` with the group as
//!    `PhysicalResourceId` (stack and the group's logical id). EC2 DescribeTags would answer in
//!    one call, but aws-sdk-ec2 is by far the largest SDK crate (hundreds of operations: minutes
//!    of build time on small machines); the Auto Scaling SDK is about the size of the
//!    CloudFormation one, and LTO keeps only the one operation used.
//!
//! The launch resource is the stack's one launch configuration / launch template, or, when it
//! has several, the one whose physical id the group launches from.

use std::time::Duration;

use crate::boot::identity::Identity;
use crate::error::{Error, Result};

pub const TAG_STACK: &str = "aws:cloudformation:stack-name";
pub const TAG_LOGICAL_ID: &str = "aws:cloudformation:logical-id";

const LAUNCH_TYPES: &[&str] = &[
    "AWS::AutoScaling::LaunchConfiguration",
    "AWS::EC2::LaunchTemplate",
];
const GROUP_TYPE: &str = "AWS::AutoScaling::AutoScalingGroup";
const DESCRIBE_RESOURCES: &str = "cloudformation:DescribeStackResources";
/// IMDS answered the identity moments ago: a tag that does not come within this is not coming.
const TAGS_LIMIT: Duration = Duration::from_secs(8);

/// What the command line gave; `None` = discover it.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub stack: Option<String>,
    pub resource: Option<String>,
    pub signal_resource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stack: String,
    pub resource: String,
    pub signal_resource: String,
}

/// The Auto Scaling view of this instance.
#[derive(Debug, Clone, Default)]
struct Group {
    name: String,
    launch_configuration: Option<String>,
    launch_template_id: Option<String>,
}

/// `imds`: where the instance metadata tags are read (the run's IMDS client).
pub async fn complete(
    given: &Given,
    identity: &Identity,
    aws: &crate::aws::Clients,
    imds: &crate::aws::imds::Imds,
) -> Result<Target> {
    let (cfn, asg) = (&aws.cloudformation, &aws.autoscaling);
    if let (Some(s), Some(r), Some(g)) = (&given.stack, &given.resource, &given.signal_resource) {
        return Ok(Target {
            stack: s.clone(),
            resource: r.clone(),
            signal_resource: g.clone(),
        });
    }
    let mut group: Option<Group> = None;
    let mut how: Vec<String> = Vec::new();

    let (stack, signal_resource) = match (&given.stack, &given.signal_resource) {
        (Some(s), Some(g)) => (s.clone(), g.clone()),
        _ => {
            let (found_stack, found_id) = match imds_tags(imds).await {
                Ok((tag_stack, tag_id)) => {
                    how.push(format!(
                        "stack and Auto Scaling group from the instance metadata tags {TAG_STACK}={tag_stack}, {TAG_LOGICAL_ID}={tag_id}"
                    ));
                    (tag_stack, tag_id)
                }
                Err(imds_reason) => {
                    tracing::info!(reason = %imds_reason, "no instance metadata tags; asking Auto Scaling and CloudFormation");
                    let (g, s, id) = from_auto_scaling(given, identity, asg, cfn)
                        .await
                        .map_err(|e| missing(given, &format!("{imds_reason}; and {e}")))?;
                    how.push(format!(
                        "stack {s} and group {id} from autoscaling:DescribeAutoScalingInstances (group {}) and cloudformation:DescribeStackResources",
                        g.name
                    ));
                    group = Some(g);
                    (s, id)
                }
            };
            // What the command line gave wins over what was found.
            (
                given.stack.clone().unwrap_or(found_stack),
                given.signal_resource.clone().unwrap_or(found_id),
            )
        }
    };

    let resource = match &given.resource {
        Some(r) => r.clone(),
        None => {
            let (r, h) = launch_resource(cfn, asg, identity, &stack, &mut group)
                .await
                .map_err(|e| missing(given, &e.to_string()))?;
            how.push(h);
            r
        }
    };
    let target = Target {
        stack,
        resource,
        signal_resource,
    };
    tracing::info!(
        stack = %target.stack,
        resource = %target.resource,
        signal_resource = %target.signal_resource,
        how = %how.join("; "),
        "discovered"
    );
    Ok(target)
}

/// Without metadata tags: this instance's group, then the stack (the given one, or the one the
/// group belongs to) and the group's logical id in it.
async fn from_auto_scaling(
    given: &Given,
    identity: &Identity,
    asg: &aws_sdk_autoscaling::Client,
    cfn: &aws_sdk_cloudformation::Client,
) -> Result<(Group, String, String)> {
    let g = describe_instance(asg, &identity.instance_id).await?;
    let (s, id) = match &given.stack {
        Some(s) => (s.clone(), group_in_stack(cfn, s, &g.name).await?),
        None => stack_of_group(cfn, &g.name).await?,
    };
    Ok((g, s, id))
}

/// The error for a discovery that could not finish: what failed, and the flags that replace it.
fn missing(given: &Given, why: &str) -> Error {
    let flags: Vec<&str> = [
        ("--stack NAME", given.stack.is_none()),
        ("--resource LOGICAL_ID", given.resource.is_none()),
        (
            "--signal-resource LOGICAL_ID",
            given.signal_resource.is_none(),
        ),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| *f)
    .collect();
    Error::Discovery {
        message: format!("{why}; pass {} instead", flags.join(" ")),
    }
}

/// The stack name and the group's logical id from IMDS tags, or why not.
async fn imds_tags(imds: &crate::aws::imds::Imds) -> std::result::Result<(String, String), String> {
    let mut values = Vec::new();
    for key in [TAG_STACK, TAG_LOGICAL_ID] {
        let path = format!("/latest/meta-data/tags/instance/{key}");
        match imds.get_within(&path, TAGS_LIMIT).await {
            Ok(v) if !v.trim().is_empty() => values.push(v.trim().to_string()),
            Ok(_) => return Err(format!("IMDS {path} is empty")),
            Err(e) => {
                let chain = e.to_string();
                let why = if chain.contains("404") {
                    format!("IMDS {path}: not found (instance metadata tags are not enabled: launch configurations cannot enable them; launch templates need MetadataOptions.InstanceMetadataTags: enabled)")
                } else {
                    chain
                };
                return Err(why);
            }
        }
    }
    let id = values.pop().unwrap_or_default();
    let stack = values.pop().unwrap_or_default();
    Ok((stack, id))
}

async fn describe_instance(asg: &aws_sdk_autoscaling::Client, instance_id: &str) -> Result<Group> {
    const API: &str = "autoscaling:DescribeAutoScalingInstances";
    let out = asg
        .describe_auto_scaling_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(crate::aws::api_error(API))?;
    let i = out
        .auto_scaling_instances()
        .iter()
        .find(|i| i.instance_id() == Some(instance_id))
        .ok_or_else(|| Error::Aws {
            api: API,
            message: format!("instance {instance_id} is not in an Auto Scaling group"),
        })?;
    Ok(Group {
        name: i.auto_scaling_group_name().unwrap_or_default().to_string(),
        launch_configuration: i.launch_configuration_name().map(str::to_string),
        launch_template_id: i
            .launch_template()
            .and_then(|t| t.launch_template_id())
            .map(str::to_string),
    })
}

/// Stack name and the group's logical id, from the group's physical name.
async fn stack_of_group(
    cfn: &aws_sdk_cloudformation::Client,
    group: &str,
) -> Result<(String, String)> {
    let out = cfn
        .describe_stack_resources()
        .physical_resource_id(group)
        .send()
        .await
        .map_err(crate::aws::api_error(DESCRIBE_RESOURCES))?;
    out.stack_resources()
        .iter()
        .find(|r| r.physical_resource_id() == Some(group) && r.resource_type() == Some(GROUP_TYPE))
        .and_then(|r| {
            Some((
                r.stack_name()?.to_string(),
                r.logical_resource_id()?.to_string(),
            ))
        })
        .ok_or_else(|| Error::Aws {
            api: DESCRIBE_RESOURCES,
            message: format!("Auto Scaling group {group} is not a resource of any stack"),
        })
}

/// The group's logical id in a known stack.
async fn group_in_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    group: &str,
) -> Result<String> {
    let resources = stack_resources(cfn, stack).await?;
    resources
        .iter()
        .find(|r| r.physical == group && r.kind == GROUP_TYPE)
        .map(|r| r.logical.clone())
        .ok_or_else(|| Error::Aws {
            api: DESCRIBE_RESOURCES,
            message: format!("stack {stack} has no Auto Scaling group named {group}"),
        })
}

struct StackResource {
    logical: String,
    physical: String,
    kind: String,
}

async fn stack_resources(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Vec<StackResource>> {
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(crate::aws::api_error(DESCRIBE_RESOURCES))?;
    Ok(out
        .stack_resources()
        .iter()
        .map(|r| StackResource {
            logical: r.logical_resource_id().unwrap_or_default().to_string(),
            physical: r.physical_resource_id().unwrap_or_default().to_string(),
            kind: r.resource_type().unwrap_or_default().to_string(),
        })
        .collect())
}

/// The stack's launch configuration / template, and how it was chosen.
async fn launch_resource(
    cfn: &aws_sdk_cloudformation::Client,
    asg: &aws_sdk_autoscaling::Client,
    identity: &Identity,
    stack: &str,
    group: &mut Option<Group>,
) -> Result<(String, String)> {
    let resources = stack_resources(cfn, stack).await?;
    let candidates: Vec<&StackResource> = resources
        .iter()
        .filter(|r| LAUNCH_TYPES.contains(&r.kind.as_str()))
        .collect();
    match candidates.as_slice() {
        [] => {
            return Err(Error::Aws {
                api: DESCRIBE_RESOURCES,
                message: format!("stack {stack} has no launch configuration or launch template"),
            })
        }
        [one] => {
            return Ok((
                one.logical.clone(),
                format!(
                    "launch resource {}: the stack's only {}",
                    one.logical, one.kind
                ),
            ))
        }
        _ => {}
    }
    // Several: the one the group launches from.
    if group.is_none() {
        *group = Some(describe_instance(asg, &identity.instance_id).await?);
    }
    let g = group.as_ref().expect("set above");
    let used: Vec<&str> = [&g.launch_configuration, &g.launch_template_id]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    candidates
        .iter()
        .find(|r| used.contains(&r.physical.as_str()))
        .map(|r| {
            (
                r.logical.clone(),
                format!(
                    "launch resource {}: the {} group {} launches from",
                    r.logical, r.kind, g.name
                ),
            )
        })
        .ok_or_else(|| Error::Aws {
            api: DESCRIBE_RESOURCES,
            message: format!(
                "stack {stack} has several launch configurations/templates ({}) and group {} uses none of them",
                candidates
                    .iter()
                    .map(|r| r.logical.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                g.name
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_only_the_missing_flags() {
        let given = Given {
            stack: Some("s".into()),
            resource: None,
            signal_resource: None,
        };
        let e = missing(&given, "IMDS tags: not found").to_string();
        assert!(e.contains("IMDS tags: not found"), "{e}");
        assert!(
            e.contains("pass --resource LOGICAL_ID --signal-resource LOGICAL_ID instead"),
            "{e}"
        );
        assert!(!e.contains("--stack"), "{e}");
        assert_eq!(missing(&given, "x").exit_code(), 2);
    }
}
