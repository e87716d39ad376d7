"""The fleet benchmark driven in one process (examples/fleet_sim.rs), for fleets whose real
processes do not fit the machine (1,000 runs + 1,000 Python agent doubles + 1,000 IMDS doubles
on 2 cores and a shared 24 GiB).

Same moto, same throttling rules, same stack and group, same identity signing (each simulated
instance signs with its own document and the harness key's signature of it), same figures as
bench_fleet.fleet(); each simulated instance has its own SDK retry partition. What differs is
listed in examples/fleet_sim.rs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fleet  # noqa: E402
from harness.aws import MotoServer  # noqa: E402
from harness.imds import InstanceIdentity, _cached_signature  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def sim_binary() -> Path:
    """FLEET_SIM_BIN, else the example next to the binary under test, else a debug build."""
    if os.environ.get("FLEET_SIM_BIN"):
        return Path(os.environ["FLEET_SIM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--example", "fleet_sim"],
                   cwd=REPO, check=True, timeout=1800)
    return target / "release/examples/fleet_sim"


def fleet(n: int, cfn_rate: float, ecs_rate: float, buckets: str = "shared",
          deadline: int = bench_fleet.DEADLINE, pace: float | None = None) -> dict[str, Any]:
    """`pace`: give the runs --group-size N --cfn-rate `pace`."""
    binary = sim_binary()
    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-fleet-sim-"))
    moto = MotoServer(work / "moto.log").start()
    try:
        stack, ids = bench_fleet.launch_group(moto, n)
        if len(ids) != n:
            return {"error": f"the group launched {len(ids)} instances, not {n}", "n": n}
        sims = []
        for k, iid in enumerate(ids):
            doc = InstanceIdentity(instance_id=iid, region=stack.region,
                                   availability_zone=stack.availability_zone,
                                   instance_type=stack.instance_type).document_text()
            sims.append({"id": iid, "document": doc,
                         "signature": _cached_signature(doc.encode(), "rsa"),
                         # Agents take 1-3 s to register, as in bench_fleet.fleet().
                         "agent_delay_secs": 1.0 + 2.0 * k / max(1, n - 1)})
        job = {"stack": stack.name, "resource": stack.launch_resource,
               "signal_resource": stack.signal_resource, "region": stack.region,
               "deadline_secs": deadline, "instances": sims}
        if pace:
            job.update({"group_size": n, "cfn_rate": pace})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_"))}
        env.update({"AWS_ENDPOINT_URL": moto.url, "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_ACCESS_KEY_ID": moto.creds["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": moto.creds["aws_secret_access_key"],
                    "RUST_LOG": "error"})
        moto.set_faults(bench_fleet.fault_rules(cfn_rate, ecs_rate, buckets))
        start = time.time()
        proc = subprocess.run([str(binary)], input=json.dumps(job), text=True, env=env,
                              capture_output=True, timeout=deadline + 120)
        wall = time.time() - start
        moto.set_faults([])
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        errors = [x["error"] for x in lines if not x["ok"]]
        out = bench_fleet.summarise(moto, stack.name, ids, start, n, cfn_rate, buckets)
        out.update({"mode": "one process", "wall": wall, "pace": pace,
                    "exit_codes": {proc.returncode: 1},
                    "failed_tails": errors[:3] + ([proc.stderr[-500:]] if proc.returncode else [])})
        return out
    finally:
        moto.stop()
