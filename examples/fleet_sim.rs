//! The fleet benchmark's in-process driver (tests/bench/fleet_sim.py runs it): N simulated
//! instances of one Auto Scaling group, each making a run's CloudFormation calls with the run's
//! own code — its CloudFormation client (identity-signed, the run's SDK config: retry mode,
//! attempts, timeouts, deadline) in **its own SDK retry partition**, so each has its own retry
//! token bucket and client rate limiter as separate processes would; `metadata::from_stack`
//! (DescribeStackResource) after `pace::before_first_call` as a run with `--group-size` does,
//! then the join's time (the agent's registration delay + the settle
//! window) slept instead of run, then `signal::send` (SignalResource) bounded by the deadline.
//!
//! What differs from N real runs: no IMDS, systemd, agent or ECS calls (DescribeClusters,
//! DescribeContainerInstances); one process's HTTP connection pool and one tokio thread for all;
//! the identity document and signature are given, not read.
//!
//! Input (stdin, JSON): {"stack", "resource", "signal_resource", "region", "deadline_secs",
//! "group_size" (optional), "cfn_rate" (optional), "instances": [{"id", "document", "signature", "agent_delay_secs"}]}. Output (stdout): one JSON
//! line per instance, {"id", "ok", "error", "secs"}. Endpoints from `AWS_ENDPOINT_URL`.

use std::time::Duration;

use ecs_bootstrap::aws::identity_auth::ProofSource;
use ecs_bootstrap::aws::CfnAuth;
use ecs_bootstrap::boot::deadline::Deadline;
use ecs_bootstrap::boot::identity::Proof;
use ecs_bootstrap::boot::signal::{self, SignalSpec, Status};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    stack: String,
    resource: String,
    signal_resource: String,
    region: String,
    deadline_secs: u64,
    /// `--group-size` (and `--cfn-rate`), as the runs would be given.
    #[serde(default)]
    group_size: Option<u32>,
    #[serde(default)]
    cfn_rate: Option<f64>,
    instances: Vec<Sim>,
}

#[derive(Deserialize)]
struct Sim {
    id: String,
    document: String,
    signature: String,
    agent_delay_secs: f64,
}

fn main() {
    let input: Input = serde_json::from_reader(std::io::stdin()).expect("input JSON");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let deadline = Duration::from_secs(input.deadline_secs);
        let sdk = ecs_bootstrap::aws::sdk_config_within(&input.region, deadline)
            .await
            .expect("SDK config");
        let pace = input
            .group_size
            .map(|group_size| ecs_bootstrap::boot::pace::Pace {
                group_size,
                cfn_rate: input
                    .cfn_rate
                    .unwrap_or(ecs_bootstrap::boot::pace::DEFAULT_CFN_RATE),
            });
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for sim in input.instances {
            let sdk = sdk.clone();
            let (stack, resource, signal_resource) = (
                input.stack.clone(),
                input.resource.clone(),
                input.signal_resource.clone(),
            );
            tasks.spawn(async move {
                let deadline = Deadline::starting_at(started, deadline);
                let proof = Proof {
                    document: sim.document,
                    signature: sim.signature,
                };
                let cfn = ecs_bootstrap::aws::cloudformation_in(
                    &sdk,
                    CfnAuth::Identity(ProofSource::Known(proof)),
                    None,
                    None,
                    Some(format!("fleet-sim-{}", sim.id)),
                );
                ecs_bootstrap::boot::pace::before_first_call(pace, deadline.total(), &sim.id).await;
                let got = deadline
                    .bound(
                        "DescribeStackResource",
                        None,
                        ecs_bootstrap::boot::metadata::from_stack(&cfn, &stack, &resource),
                    )
                    .await;
                let result = match got {
                    Ok(_) => {
                        tokio::time::sleep(
                            Duration::from_secs_f64(sim.agent_delay_secs)
                                + ecs_bootstrap::boot::join::SETTLE,
                        )
                        .await;
                        let spec = SignalSpec {
                            stack,
                            resource: signal_resource,
                            unique_id: sim.id.clone(),
                        };
                        deadline
                            .bound_signal(signal::send(&cfn, &spec, Status::Success))
                            .await
                            .map(|_| ())
                    }
                    Err(e) => Err(e),
                };
                serde_json::json!({
                    "id": sim.id,
                    "ok": result.is_ok(),
                    "error": result.err().map(|e| e.to_string()),
                    "secs": started.elapsed().as_secs_f64(),
                })
            });
        }
        while let Some(done) = tasks.join_next().await {
            println!("{}", done.expect("task"));
        }
    });
}
