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
    use crate::test_http::{Request, Response, Server};
    use std::sync::Arc;

    #[test]
    fn status_names_are_cloudformations_and_serde_agrees() {
        for (s, name) in [(Status::Success, "SUCCESS"), (Status::Failure, "FAILURE")] {
            assert_eq!(s.as_str(), name);
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(serde_json::from_value::<Status>(name.into()).unwrap(), s);
        }
        assert!(serde_json::from_value::<Status>("success".into()).is_err());
    }

    /// CloudFormation's answers by stack name: `waiting` takes the signal, `done` no longer
    /// waits (its ValidationError), `denied` refuses.
    fn cloudformation() -> Server {
        Server::start(Arc::new(|r: &Request| {
            let error = |code: &str, message: &str| {
                Response::new(
                    400,
                    "text/xml",
                    format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"),
                )
            };
            match r.form("StackName").as_deref() {
                Some("waiting") => Response::new(
                    200,
                    "text/xml",
                    "<SignalResourceResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></SignalResourceResponse>",
                ),
                Some("done") => error(
                    "ValidationError",
                    "Resource Group is in CREATE_COMPLETE state and cannot be signaled",
                ),
                _ => error("AccessDenied", "not authorized to perform: cloudformation:SignalResource"),
            }
        }))
    }

    async fn client(url: &str) -> aws_sdk_cloudformation::Client {
        let keys = aws_credential_types::Credentials::new("AKID", "secret", None, None, "test");
        let sdk = crate::aws::sdk_config("eu-west-1")
            .await
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(keys.clone()),
            )
            .build();
        crate::aws::cloudformation_in(
            &sdk,
            crate::aws::CfnAuth::from_flags(Some(keys), None),
            Some(url),
            None,
            None,
        )
    }

    fn spec(stack: &str) -> SignalSpec {
        SignalSpec {
            stack: stack.into(),
            resource: "Group".into(),
            unique_id: "i-0123456789abcdef0".into(),
        }
    }

    /// The request is SignalResource with the spec's stack, resource and unique id, and the
    /// status as CloudFormation spells it.
    #[tokio::test]
    async fn the_request_carries_the_spec_and_the_status() {
        let server = cloudformation();
        let cfn = client(&server.url).await;
        for status in [Status::Success, Status::Failure] {
            let d = send(&cfn, &spec("waiting"), status).await.unwrap();
            assert_eq!(d, Delivered::Yes);
        }
        let sent: Vec<Vec<(&str, Option<String>)>> = server
            .requests()
            .iter()
            .map(|r| {
                [
                    "Action",
                    "Version",
                    "StackName",
                    "LogicalResourceId",
                    "UniqueId",
                    "Status",
                ]
                .into_iter()
                .map(|k| (k, r.form(k)))
                .collect()
            })
            .collect();
        let want = |status: &str| {
            [
                ("Action", "SignalResource"),
                ("Version", "2010-05-15"),
                ("StackName", "waiting"),
                ("LogicalResourceId", "Group"),
                ("UniqueId", "i-0123456789abcdef0"),
                ("Status", status),
            ]
            .into_iter()
            .map(|(k, v)| (k, Some(v.to_string())))
            .collect::<Vec<_>>()
        };
        assert_eq!(sent, [want("SUCCESS"), want("FAILURE")]);
    }

    /// A resource that no longer waits is not a failure (a re-run after the stack completed);
    /// any other refusal is, naming the API and CloudFormation's code.
    #[tokio::test]
    async fn refusals() {
        let server = cloudformation();
        let cfn = client(&server.url).await;
        let d = send(&cfn, &spec("done"), Status::Success).await.unwrap();
        assert_eq!(d, Delivered::NotWaiting);
        let e = send(&cfn, &spec("denied"), Status::Success)
            .await
            .unwrap_err();
        match &e {
            Error::Aws { api, message } => {
                assert_eq!(*api, "cloudformation:SignalResource");
                assert!(message.starts_with("AccessDenied: "), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.requests().len(), 2, "neither retried");
    }
}
