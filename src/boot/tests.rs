//! The whole boot sequence in-process ([`run_with`]): IMDS, CloudFormation, ECS and the agent's
//! introspection answered by one loopback stub ([`crate::test_http`]), systemctl by a recording [`Fake`],
//! files under a temporary root. What tests/test_boot.py checks end to end against moto, here
//! in a few seconds and without the binary.

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

use super::host::Host;
use super::signal::Delivered;
use super::*;
use crate::aws::imds::{Imds, ImdsOptions};
use crate::sys::process::{Fake, Reply};
use crate::test_http::{Request, Response, Server};

const INSTANCE_ID: &str = "i-0b0075000000000aa";
const REGION: &str = "eu-west-1";
const CLUSTER: &str = "prod";
const STACK: &str = "app";
const RESOURCE: &str = "LaunchConfig";
const GROUP: &str = "Group";
const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/0123abcd";
const ECS_CONFIG: &str = "etc/ecs/ecs.config";

/// What the stub's services say.
#[derive(Clone, Copy)]
struct Cloud {
    /// The cluster the agent's `/v1/metadata` reports.
    agent_cluster: &'static str,
    /// ECS refuses DescribeClusters and DescribeContainerInstances (the classic instance role).
    ecs_denied: bool,
    /// IMDS serves the instance metadata tags CloudFormation puts on a group's instances.
    tags: bool,
}

const HEALTHY: Cloud = Cloud {
    agent_cluster: CLUSTER,
    ecs_denied: false,
    tags: false,
};

fn answer(cloud: Cloud, r: &Request) -> Response {
    // The SDK's clients post to the endpoint's path with a trailing '/'.
    match (r.method.as_str(), r.path.trim_end_matches('/')) {
        ("PUT", "/latest/api/token") => Response::new(200, "text/plain", "token")
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
        ("GET", p) if p.starts_with("/latest/") => imds(cloud, p),
        ("POST", "/cfn") => cloudformation(r),
        ("POST", "/ecs") => ecs(cloud, r),
        ("GET", "/v1/metadata") => Response::new(
            200,
            "application/json",
            serde_json::json!({
                "Cluster": cloud.agent_cluster,
                "ContainerInstanceArn": ARN,
                "Version": "Amazon ECS Agent - v1.90.0",
            })
            .to_string(),
        ),
        _ => Response::new(404, "text/plain", ""),
    }
}

/// As tests/harness/imds.py serves them (tags disabled: 404).
fn imds(cloud: Cloud, path: &str) -> Response {
    let tag = |value: &str| match cloud.tags {
        true => Response::new(200, "text/plain", value),
        false => Response::new(404, "text/plain", ""),
    };
    match path {
        "/latest/meta-data/tags/instance/aws:cloudformation:stack-name" => tag(STACK),
        "/latest/meta-data/tags/instance/aws:cloudformation:logical-id" => tag(GROUP),
        "/latest/dynamic/instance-identity/document" => Response::new(
            200,
            "text/plain",
            serde_json::to_string_pretty(&serde_json::json!({
                "accountId": "123456789012",
                "architecture": "x86_64",
                "availabilityZone": "eu-west-1a",
                "imageId": "ami-04681a1dbd79675a5",
                "instanceId": INSTANCE_ID,
                "instanceType": "t3.small",
                "privateIp": "10.0.1.10",
                "region": REGION,
                "version": "2017-09-30",
            }))
            .expect("serialises"),
        ),
        "/latest/dynamic/instance-identity/signature" => {
            Response::new(200, "text/plain", "c2lnbmF0dXJl\nb2YgdGhlIGRvY3VtZW50\n")
        }
        _ => Response::new(404, "text/plain", ""),
    }
}

const CFN_NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// The query protocol: a form-encoded POST, an XML answer (shapes as moto's
/// `moto/cloudformation/responses.py` templates and the API reference).
fn cloudformation(r: &Request) -> Response {
    let xml = |body: String| Response::new(200, "text/xml", body);
    match r.form("Action").as_deref() {
        Some("DescribeStackResource") => {
            let metadata = serde_json::json!({"ecs-bootstrap": {"Cluster": CLUSTER}}).to_string();
            xml(format!(
                r#"<DescribeStackResourceResponse xmlns="{CFN_NS}">
  <DescribeStackResourceResult>
    <StackResourceDetail>
      <StackId>arn:aws:cloudformation:eu-west-1:123456789012:stack/{STACK}/1</StackId>
      <StackName>{STACK}</StackName>
      <LogicalResourceId>{RESOURCE}</LogicalResourceId>
      <PhysicalResourceId>app-LaunchConfig-1</PhysicalResourceId>
      <ResourceType>AWS::AutoScaling::LaunchConfiguration</ResourceType>
      <LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp>
      <ResourceStatus>CREATE_COMPLETE</ResourceStatus>
      <Metadata>{}</Metadata>
    </StackResourceDetail>
  </DescribeStackResourceResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</DescribeStackResourceResponse>"#,
                escape(&metadata)
            ))
        }
        Some("SignalResource") => xml(format!(
            r#"<SignalResourceResponse xmlns="{CFN_NS}"><ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></SignalResourceResponse>"#
        )),
        other => Response::new(
            400,
            "text/xml",
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{other:?}</Message></Error></ErrorResponse>"),
        ),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON 1.1: the operation in `X-Amz-Target`.
fn ecs(cloud: Cloud, r: &Request) -> Response {
    let json = |status, body: serde_json::Value| {
        Response::new(status, "application/x-amz-json-1.1", body.to_string())
    };
    if cloud.ecs_denied {
        return json(
            400,
            serde_json::json!({"__type": "AccessDeniedException", "message": "User: arn:aws:sts::123456789012:assumed-role/r/i is not authorized to perform this action"}),
        );
    }
    let target = r.header("x-amz-target").unwrap_or("");
    match target.rsplit('.').next() {
        Some("DescribeClusters") => json(
            200,
            serde_json::json!({"clusters": [{"clusterName": CLUSTER, "status": "ACTIVE"}], "failures": []}),
        ),
        Some("DescribeContainerInstances") => json(
            200,
            serde_json::json!({"containerInstances": [{"containerInstanceArn": ARN, "status": "ACTIVE", "agentConnected": true}], "failures": []}),
        ),
        _ => json(
            400,
            serde_json::json!({"__type": "InvalidParameterException", "message": target}),
        ),
    }
}

/// systemd as a healthy instance has it: every call succeeds, docker is active, nothing fails;
/// `start --no-block <failing>` exits 1.
fn systemd(failing: Option<&'static str>) -> Arc<Fake> {
    Arc::new(Fake::scripted(move |argv| {
        match (argv[1].as_str(), argv.last().map(String::as_str)) {
            ("is-active", _) => Some(Reply::Exit(0, "active\n".into())),
            // `is-failed` exits 0 only for a failed unit.
            ("is-failed", _) => Some(Reply::Exit(1, "active\n".into())),
            ("start", unit) if unit.is_some() && unit == failing => {
                Some(Reply::Exit(1, String::new()))
            }
            _ => None,
        }
    }))
}

struct Boot {
    server: Server,
    runner: Arc<Fake>,
    root: tempfile::TempDir,
}

impl Boot {
    fn new(cloud: Cloud, runner: Arc<Fake>) -> Boot {
        Boot {
            server: Server::start(Arc::new(move |r: &Request| answer(cloud, r))),
            runner,
            root: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// What the command line would give: stack and resources named (no discovery), the region,
    /// a short deadline and join timeout so that a broken test ends in seconds.
    fn options(&self) -> RunOptions {
        RunOptions {
            stack: Some(STACK.into()),
            resource: Some(RESOURCE.into()),
            signal_resource: Some(GROUP.into()),
            plan: PlanOptions {
                strict: false,
                region: Some(REGION.into()),
                configsets: Vec::new(),
                root: self.root.path().to_path_buf(),
                introspection_url: self.server.url.clone(),
                timeout: Some(10),
                signal: true,
            },
            force: false,
            after_handoff: false,
            deadline_secs: 20,
            imds: ImdsOptions::default(),
            role: None,
            pace: None,
        }
    }

    /// A host of this test's: its runner, the stub for IMDS and the AWS endpoints, keys.
    fn host(&self) -> Host {
        let url = &self.server.url;
        let keys = Credentials::new("AKIDBOOTTEST", "secret", None, None, "test");
        Host {
            runner: self.runner.clone(),
            // One client per run, as a process has (leaked: a few per test binary).
            imds: Box::leak(Box::new(Imds::with_endpoint(url).expect("an endpoint"))),
            endpoints: Endpoints {
                cloudformation: Some(format!("{url}/cfn")),
                ecs: Some(format!("{url}/ecs")),
                autoscaling: Some(format!("{url}/asg")),
            },
            credentials: Some(SharedCredentialsProvider::new(keys)),
        }
    }

    async fn run(&self, o: &RunOptions) -> Result<Outcome, Failure> {
        run_with(o, Then::Join, &self.host()).await
    }

    /// The requests to one of the stub's services (`/cfn`, `/ecs`).
    fn at(&self, service: &str) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            // The SDK's clients post to the endpoint's path with a trailing '/'.
            .filter(|r| r.path.trim_end_matches('/') == service)
            .collect()
    }

    /// The CloudFormation calls, as `Action` (and `Status` for a signal).
    fn cfn_actions(&self) -> Vec<String> {
        self.at("/cfn")
            .iter()
            .map(|r| {
                let action = r.form("Action").unwrap_or_default();
                match r.form("Status") {
                    Some(s) => format!("{action} {s}"),
                    None => action,
                }
            })
            .collect()
    }

    fn signals(&self) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.form("Action").as_deref() == Some("SignalResource"))
            .collect()
    }
}

/// The start sequence the plan prints for a first run (src/boot/services.rs `calls`; the
/// CloudWatch agent is optional and restarted, its fragment being new), then docker's wait.
const STARTS: &[&str] = &[
    "systemctl try-restart --no-block amazon-cloudwatch-agent.service",
    "systemctl reset-failed amazon-cloudwatch-agent.service",
    "systemctl enable amazon-cloudwatch-agent.service",
    "systemctl start --no-block amazon-cloudwatch-agent.service",
    "systemctl reset-failed docker.service",
    "systemctl enable docker.service",
    "systemctl start --no-block docker.service",
    "systemctl reset-failed ecs.service",
    "systemctl enable ecs.service",
    "systemctl start --no-block ecs.service",
    "systemctl is-active docker.service",
];

/// After the starts, only the join's unit watch (how many depends on timing).
fn assert_starts_then_watch(lines: &[String]) {
    assert!(lines.len() >= STARTS.len(), "{lines:#?}");
    assert_eq!(lines[..STARTS.len()], *STARTS, "{lines:#?}");
    for l in &lines[STARTS.len()..] {
        assert!(
            l == "systemctl is-failed ecs.service" || l == "systemctl is-failed docker.service",
            "{lines:#?}"
        );
    }
}

#[tokio::test]
async fn a_healthy_boot_signals_success_once() {
    let b = Boot::new(HEALTHY, systemd(None));
    let outcome = b.run(&b.options()).await.expect("a healthy boot");
    assert_eq!(
        outcome,
        Outcome::Signalled {
            instance_id: INSTANCE_ID.into(),
            cluster: CLUSTER.into(),
            delivered: Delivered::Yes,
        }
    );
    assert_eq!(
        b.cfn_actions(),
        ["DescribeStackResource", "SignalResource SUCCESS"]
    );
    let signal = &b.signals()[0];
    for (k, v) in [
        ("StackName", STACK),
        ("LogicalResourceId", GROUP),
        ("UniqueId", INSTANCE_ID),
    ] {
        assert_eq!(signal.form(k).as_deref(), Some(v), "{k}: {}", signal.body);
    }
    // Identity-signed with the proof read at the start; ECS SigV4-signed with the host's keys.
    let auth = signal.header("authorization").unwrap_or("");
    assert!(auth.starts_with("CFN_V1 "), "{auth}");
    assert!(
        auth.ends_with(":c2lnbmF0dXJlb2YgdGhlIGRvY3VtZW50"),
        "{auth}"
    );
    let ecs = b.at("/ecs");
    let targets: Vec<&str> = ecs
        .iter()
        .map(|r| r.header("x-amz-target").unwrap_or(""))
        .collect();
    assert_eq!(
        targets,
        [
            "AmazonEC2ContainerServiceV20141113.DescribeClusters",
            "AmazonEC2ContainerServiceV20141113.DescribeContainerInstances"
        ]
    );
    for r in &ecs {
        let auth = r.header("authorization").unwrap_or("");
        assert!(auth.contains("Credential=AKIDBOOTTEST/"), "{auth}");
    }
    // One IMDS client, one token for the run.
    let tokens = b
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(tokens, 1);
    assert_starts_then_watch(&b.runner.lines());
    let config = std::fs::read_to_string(b.root.path().join(ECS_CONFIG)).expect("ecs.config");
    assert!(config.lines().any(|l| l == "ECS_CLUSTER=prod"), "{config}");
    let state = state::StateRecord::read(&Root::new(b.root.path())).expect("state.json");
    assert!(state.delivered_success(), "{state:?}");
}

#[tokio::test]
async fn a_failing_start_signals_failure_at_services() {
    let b = Boot::new(HEALTHY, systemd(Some("docker.service")));
    let f = b
        .run(&b.options())
        .await
        .expect_err("docker does not start");
    assert_eq!(f.step, Step::Services);
    assert_eq!(
        f.line(""),
        "ecs-bootstrap: FAILURE at services: `systemctl start --no-block docker.service` exited with 1"
    );
    assert_eq!(
        b.cfn_actions(),
        ["DescribeStackResource", "SignalResource FAILURE"]
    );
    assert_eq!(
        b.signals()[0].form("UniqueId").as_deref(),
        Some(INSTANCE_ID)
    );
    // Nothing after the failed start: ecs is not started, the join not waited for.
    let lines = b.runner.lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some(STARTS[6]),
        "{lines:#?}"
    );
    let state = state::StateRecord::read(&Root::new(b.root.path())).expect("state.json");
    assert_eq!(state.failed_step.as_deref(), Some("services"));
}

#[tokio::test]
async fn an_agent_in_another_cluster_fails_the_join() {
    let cloud = Cloud {
        agent_cluster: "staging",
        ..HEALTHY
    };
    let b = Boot::new(cloud, systemd(None));
    let f = b.run(&b.options()).await.expect_err("wrong cluster");
    assert_eq!(f.step, Step::Join);
    assert!(
        f.line("").starts_with(
            "ecs-bootstrap: FAILURE at cluster join: the ECS agent registered in cluster 'staging', expected 'prod'"
        ),
        "{}",
        f.line("")
    );
    assert_eq!(
        b.cfn_actions(),
        ["DescribeStackResource", "SignalResource FAILURE"]
    );
}

/// The classic instance role may not call ECS: warned, and the agent's word stands.
#[tokio::test]
async fn ecs_access_denied_is_a_warning() {
    let cloud = Cloud {
        ecs_denied: true,
        ..HEALTHY
    };
    let b = Boot::new(cloud, systemd(None));
    let outcome = b
        .run(&b.options())
        .await
        .expect("denied ECS calls do not fail");
    assert!(matches!(outcome, Outcome::Signalled { .. }), "{outcome:?}");
    assert_eq!(
        b.at("/ecs").len(),
        2,
        "DescribeClusters and DescribeContainerInstances, each refused"
    );
    assert_eq!(
        b.cfn_actions(),
        ["DescribeStackResource", "SignalResource SUCCESS"]
    );
}

#[tokio::test]
async fn no_signal_sends_nothing() {
    let b = Boot::new(HEALTHY, systemd(None));
    let mut o = b.options();
    o.plan.signal = false;
    let outcome = b.run(&o).await.expect("a healthy boot");
    assert_eq!(
        outcome,
        Outcome::NotSignalled {
            instance_id: INSTANCE_ID.into(),
            cluster: CLUSTER.into(),
        }
    );
    assert_eq!(b.cfn_actions(), ["DescribeStackResource"]);
}

/// Zero-config: the stack and the group from the instance metadata tags, read through the
/// run's IMDS client.
#[tokio::test]
async fn the_stack_and_group_from_imds_tags() {
    let cloud = Cloud {
        tags: true,
        ..HEALTHY
    };
    let b = Boot::new(cloud, systemd(None));
    let mut o = b.options();
    (o.stack, o.signal_resource) = (None, None);
    b.run(&o).await.expect("a healthy boot");
    let signal = &b.signals()[0];
    assert_eq!(signal.form("StackName").as_deref(), Some(STACK));
    assert_eq!(signal.form("LogicalResourceId").as_deref(), Some(GROUP));
    let tags = b
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/latest/meta-data/tags/"))
        .count();
    assert_eq!(tags, 2);
}

/// Run once: a second run finds state.json (this instance, SUCCESS delivered) and does nothing
/// after reading the identity.
#[tokio::test]
async fn a_second_run_skips() {
    let b = Boot::new(HEALTHY, systemd(None));
    b.run(&b.options()).await.expect("the first run");
    let (requests, calls) = (b.server.requests().len(), b.runner.lines().len());
    let outcome = b.run(&b.options()).await.expect("the second run");
    match &outcome {
        Outcome::Skipped { why } => assert!(why.contains("already signalled SUCCESS"), "{why}"),
        other => panic!("{other:?}"),
    }
    let later = &b.server.requests()[requests..];
    assert!(
        later.iter().all(|r| r.path.starts_with("/latest/")),
        "only IMDS: {later:#?}"
    );
    assert_eq!(b.runner.lines().len(), calls, "no systemctl call");
    assert_eq!(b.signals().len(), 1);
}
