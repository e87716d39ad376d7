"""A fleet booting at once into API throttling: N instances of one Auto Scaling group run
ecs-bootstrap together against moto, whose CloudFormation and ECS APIs are rate-limited like an
account's (token buckets in the harness: requests beyond the rate get `Throttling: Rate
exceeded`, HTTP 400).

Prints figures: how many instances signalled SUCCESS, time to signal (p50/p95/max, from the
common start), API calls and throttled answers per action, the most attempts one instance
needed. Asserts nothing about them (targets live in the issue notes); exits 1 only when an
instance did not end in SUCCESS, because then the figures mean nothing.

Run through scripts/bench (BENCH_FLEET=N instances, default 40; BENCH_FLEET_RATE=R CloudFormation
requests per second, default 5; 0 = skip).
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.aws import MotoServer, create_network, create_stack, example_template  # noqa: E402
from harness.imds import InstanceIdentity  # noqa: E402
from harness.instance import Instance, bootstrap_bin  # noqa: E402

N = int(os.environ.get("BENCH_FLEET", "40"))
CFN_RATE = float(os.environ.get("BENCH_FLEET_RATE", "5"))
ECS_RATE = CFN_RATE * 4
DEADLINE = 600


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    if N <= 0:
        print("fleet benchmark: skipped (BENCH_FLEET=0)")
        return 0
    binary = bootstrap_bin()
    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-fleet-"))
    moto = MotoServer(work / "moto.log").start()
    instances: list[Instance] = []
    try:
        body = example_template("stack.yml").replace('MaxSize: "4"', f'MaxSize: "{N}"', 1)
        stack = create_stack(moto, create_network(moto), body,
                             parameters={"ApplicationDesiredCount": str(N)})
        group = moto.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[stack.instance_tags["aws:autoscaling:groupName"]])
        ids = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
        if len(ids) != N:
            print(f"the group launched {len(ids)} instances, not {N}")
            return 1
        for n, iid in enumerate(ids):
            inst = Instance(moto, work / f"i{n:03d}", InstanceIdentity(
                instance_id=iid, region=stack.region, availability_zone=stack.availability_zone,
                instance_type=stack.instance_type))
            # Agents take 1-3 s to register, as real ones after docker starts.
            inst.configure(agent={"mode": "slow", "delay": 1.0 + 2.0 * n / max(1, N - 1)})
            instances.append(inst)
        moto.set_faults([
            {"action": "*", "service": "cloudformation", "rate": CFN_RATE, "burst": CFN_RATE,
             "status": 400, "code": "Throttling", "message": "Rate exceeded"},
            {"action": "*", "service": "ecs", "rate": ECS_RATE, "burst": ECS_RATE,
             "status": 400, "code": "ThrottlingException", "message": "Rate exceeded"},
        ])
        print(f"fleet: {N} instances of {stack.name}; CloudFormation limited to {CFN_RATE:g} "
              f"req/s, ECS to {ECS_RATE:g} req/s; --deadline {DEADLINE}")
        start = time.time()
        procs = []
        for inst in instances:
            argv = [str(binary), *stack.run_args("--deadline", str(DEADLINE)),
                    "--root", str(inst.root), "--introspection-url", inst.introspection_url]
            err = open(inst.workdir / "stderr.txt", "w")
            procs.append((inst, subprocess.Popen(argv, env=inst.env(), stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL, stderr=err,
                                                 start_new_session=True), err))
        codes = []
        for inst, p, err in procs:
            codes.append(p.wait(timeout=DEADLINE + 60))
            err.close()
        wall = time.time() - start
        moto.set_faults([])

        signals = [s for s in moto.signals(stack.name)]
        by_id = {s["UniqueId"]: s for s in signals}
        success = [s for s in signals if s["Status"] == "SUCCESS"]
        times = [by_id[i]["time"] - start for i in ids if i in by_id]
        requests = [r for r in moto.requests() if r["time"] >= start]
        calls = collections.Counter(r["action"] for r in requests)
        throttled = collections.Counter(r["action"] for r in requests if r["fault"])
        per_instance = collections.Counter(
            (r["action"], (r["params"] or {}).get("UniqueId"))
            for r in requests if r["action"] == "SignalResource")
        print(f"  exit codes: {dict(collections.Counter(codes))}; SUCCESS signals "
              f"{len(success)}/{N}; all done in {wall:.1f} s")
        if times:
            print(f"  time to signal: p50 {statistics.median(times):.1f} s, "
                  f"p95 {pct(times, 95):.1f} s, max {max(times):.1f} s")
        for action in sorted(calls):
            print(f"  {action:<32} calls {calls[action]:>5}  throttled {throttled[action]:>5}")
        if per_instance:
            print(f"  SignalResource attempts per instance: max {max(per_instance.values())}")
        failed = [(inst.workdir.name, c) for (inst, _, _), c in zip(procs, codes) if c != 0]
        if len(success) != N or failed:
            for name, c in failed[:3]:
                tail = (work / name / "stderr.txt").read_text(errors="replace").splitlines()[-3:]
                print(f"  {name} exited {c}: " + " | ".join(tail))
            return 1
        return 0
    finally:
        for inst in instances:
            inst.close()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
