//! Step 6: tell CloudFormation, once, SUCCESS or FAILURE.
//!
//! SignalResource has no reason field: the reason goes to the console and the journal, where
//! `aws ec2 get-console-output` and the CloudWatch agent pick it up.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Also the `status` of `state.json` (src/boot/state.rs), as these names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failure,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failure => "FAILURE",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignalSpec {
    pub stack: String,
    pub resource: String,
    pub unique_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Yes,
    /// The resource no longer waits for signals (stack complete, or a re-run after reboot).
    NotWaiting,
    /// An earlier run (before a reboot or a restart) delivered the signal; not sent again.
    Earlier,
}

pub async fn send(
    cfn: &aws_sdk_cloudformation::Client,
    spec: &SignalSpec,
    status: Status,
) -> Result<Delivered> {
    use aws_sdk_cloudformation::types::ResourceSignalStatus;
    let s = match status {
        Status::Success => ResourceSignalStatus::Success,
        Status::Failure => ResourceSignalStatus::Failure,
    };
    let result = cfn
        .signal_resource()
        .stack_name(&spec.stack)
        .logical_resource_id(&spec.resource)
        .unique_id(&spec.unique_id)
        .status(s)
        .send()
        .await;
    match result {
        Ok(_) => {
            tracing::info!(stack = %spec.stack, resource = %spec.resource, unique_id = %spec.unique_id, status = status.as_str(), "signalled CloudFormation");
            Ok(Delivered::Yes)
        }
        Err(e) => {
            let message = crate::aws::describe_sdk_error(&e);
            if message.contains("cannot be signaled") {
                tracing::warn!(stack = %spec.stack, resource = %spec.resource, %message, "resource is not waiting for a signal; nothing to do");
                Ok(Delivered::NotWaiting)
            } else {
                Err(Error::Aws {
                    api: "cloudformation:SignalResource",
                    message,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_cloudformations_and_serde_agrees() {
        for (s, name) in [(Status::Success, "SUCCESS"), (Status::Failure, "FAILURE")] {
            assert_eq!(s.as_str(), name);
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(serde_json::from_value::<Status>(name.into()).unwrap(), s);
        }
        assert!(serde_json::from_value::<Status>("success".into()).is_err());
    }
}
