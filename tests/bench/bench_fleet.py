"""A fleet booting at once into API throttling: N instances of one Auto Scaling group run
ecs-bootstrap together against moto, whose CloudFormation and ECS APIs are rate-limited like an
account's (token buckets in the harness: requests beyond the rate get `Throttling: Rate
exceeded`, HTTP 400).

Figures (returned by `fleet()`, printed by `report()`): how many instances signalled SUCCESS,
time to signal (p50/p95/max, from the common start) against the ideal (CloudFormation calls
needed / rate), CloudFormation calls against those needed, calls and throttled answers per
action, the most attempts one instance needed. Asserts nothing (targets live in
tests/bench/suite.py). Run through scripts/bench (--fleet N).
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
import shutil
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.aws import MotoServer, create_network, create_stack, example_template  # noqa: E402
from harness.imds import InstanceIdentity  # noqa: E402
from harness.instance import Instance, bootstrap_bin  # noqa: E402

TIME = shutil.which("time", path="/usr/bin:/bin") or "time"

DEADLINE = 600
# Below Linux's ephemeral range (32768-60999 by default: /proc/sys/net/ipv4/ip_local_port_range).
AGENT_PORTS = 20000


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fault_rules(cfn_rate: float, ecs_rate: float, buckets: str) -> list[dict[str, Any]]:
    """CloudFormation throttled in one token bucket shared by its actions ("shared"), or one
    bucket per action ("per-action"); ECS in one bucket. Burst = rate, as the issue's model."""
    throttle = {"service": "cloudformation", "rate": cfn_rate, "burst": cfn_rate,
                "status": 400, "code": "Throttling", "message": "Rate exceeded"}
    if buckets == "shared":
        cfn = [{"action": "*", **throttle}]
    else:
        cfn = [{"action": a, **throttle} for a in CFN_ACTIONS]
    return cfn + [{"action": "*", "service": "ecs", "rate": ecs_rate, "burst": ecs_rate,
                   "status": 400, "code": "ThrottlingException", "message": "Rate exceeded"}]


CFN_ACTIONS = ("DescribeStackResource", "SignalResource", "DescribeStackResources",
               "DescribeStacks", "GetTemplate")


def launch_group(moto: MotoServer, n: int):
    """The example stack with an Auto Scaling group of `n` instances in moto (a /22 network:
    two /24s cannot hold 1,000 addresses); its stack and the group's instance ids."""
    body = example_template("stack.yml").replace('MaxSize: "4"', f'MaxSize: "{n}"', 1)
    stack = create_stack(moto, create_network(moto, 22), body,
                         parameters={"ApplicationDesiredCount": str(n)})
    group = moto.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.instance_tags["aws:autoscaling:groupName"]])
    return stack, [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]


def fleet(binary: Path, n: int, cfn_rate: float, ecs_rate: float, buckets: str = "shared",
          deadline: int = DEADLINE, pace: float | None = None) -> dict[str, Any]:
    """N real `run` processes of one Auto Scaling group, released at once. `pace`: give them
    --group-size N --cfn-rate `pace` (as the UserData would: the group's DesiredCapacity)."""
    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-fleet-"))
    moto = MotoServer(work / "moto.log").start()
    instances: list[Instance] = []
    try:
        stack, ids = launch_group(moto, n)
        if len(ids) != n:
            return {"error": f"the group launched {len(ids)} instances, not {n}"}
        for k, iid in enumerate(ids):
            inst = Instance(moto, work / f"i{k:04d}", InstanceIdentity(
                instance_id=iid, region=stack.region, availability_zone=stack.availability_zone,
                instance_type=stack.instance_type))
            # A free port (procs.free_port) is free only until someone binds it: with hundreds
            # of IMDS doubles binding ephemeral ports meanwhile, an agent found its port taken
            # (measured: 1 in 100). Agents get ports below the ephemeral range instead.
            inst.agent_port = AGENT_PORTS + k
            inst.introspection_url = f"http://127.0.0.1:{inst.agent_port}"
            # Agents take 1-3 s to register, as real ones after docker starts.
            inst.configure(agent={"mode": "slow", "delay": 1.0 + 2.0 * k / max(1, n - 1)})
            instances.append(inst)
        moto.set_faults(fault_rules(cfn_rate, ecs_rate, buckets))
        start = time.time()
        procs = []
        for inst in instances:
            paced = ["--group-size", str(n), "--cfn-rate", f"{pace:g}"] if pace else []
            argv = [str(binary), *stack.run_args("--deadline", str(deadline), *paced),
                    "--root", str(inst.root), "--introspection-url", inst.introspection_url]
            err = open(inst.workdir / "stderr.txt", "w")
            procs.append((inst, subprocess.Popen(
                [TIME, "-f", "%M", "-o", str(inst.workdir / "rss.txt"), *argv],
                env=inst.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True), err))
        codes = []
        for inst, p, err in procs:
            try:
                codes.append(p.wait(timeout=max(1, start + deadline + 60 - time.time())))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                codes.append(-9)
            err.close()
        wall = time.time() - start
        moto.set_faults([])
        rss = [int((i.workdir / "rss.txt").read_text().split()[-1]) for i in instances
               if (i.workdir / "rss.txt").exists()]
        failed = [(inst.workdir.name, c) for (inst, _, _), c in zip(procs, codes) if c != 0]
        tails = [f"{name} exited {c}: " + " | ".join(
            (work / name / "stderr.txt").read_text(errors="replace").splitlines()[-3:])
            for name, c in failed[:3]]
        out = summarise(moto, stack.name, ids, start, n, cfn_rate, buckets)
        out.update({"mode": "processes", "wall": wall, "pace": pace, "exit_codes": dict(
            collections.Counter(codes)), "failed_tails": tails,
            "rss_max_mib": max(rss) / 1024 if rss else None})
        return out
    finally:
        for inst in instances:
            inst.close()
        moto.stop()


def summarise(moto: MotoServer, stack_name: str, ids: list[str], start: float, n: int,
              cfn_rate: float, buckets: str) -> dict[str, Any]:
    signals = moto.signals(stack_name)
    by_id: dict[str, dict[str, Any]] = {}
    for s in signals:
        by_id.setdefault(s["UniqueId"], s)
    success = [i for i in ids if i in by_id and by_id[i]["Status"] == "SUCCESS"]
    failure = [i for i in ids if i in by_id and by_id[i]["Status"] == "FAILURE"]
    times = [by_id[i]["time"] - start for i in ids if i in by_id]
    requests = [r for r in moto.requests() if r["time"] >= start]
    cfn = [r for r in requests if r["action"] in CFN_ACTIONS]
    calls = collections.Counter(r["action"] for r in requests)
    throttled = collections.Counter(r["action"] for r in requests if r["fault"])
    attempts = collections.Counter(
        (r["action"], (r["params"] or {}).get("UniqueId")) for r in requests
        if r["action"] == "SignalResource")
    needed = 2 * n
    ideal = needed / cfn_rate if buckets == "shared" else n / cfn_rate
    last = max(times) if times else None
    return {
        "n": n, "cfn_rate": cfn_rate, "buckets": buckets,
        "success": len(success), "failure": len(failure),
        "p50": statistics.median(times) if times else None,
        "p95": pct(times, 95) if times else None, "max": last,
        "ideal": ideal, "time_ratio": last / ideal if last else None,
        "cfn_calls": len(cfn), "cfn_needed": needed, "calls_ratio": len(cfn) / needed,
        "calls": dict(calls), "throttled": dict(throttled),
        "max_signal_attempts": max(attempts.values()) if attempts else None,
    }


def report(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"fleet: {r['error']}")
        return
    print(f"fleet ({r['mode']}{', --group-size N --cfn-rate %g' % r['pace'] if r.get('pace') else ''}): N={r['n']}, CloudFormation {r['cfn_rate']:g} req/s "
          f"({r['buckets']} bucket{'s' if r['buckets'] != 'shared' else ''}); "
          f"SUCCESS {r['success']}/{r['n']}, FAILURE {r['failure']}, all done in {r['wall']:.1f} s")
    if r["max"] is not None:
        print(f"  time to signal: p50 {r['p50']:.1f} s, p95 {r['p95']:.1f} s, max {r['max']:.1f} s"
              f" (ideal {r['ideal']:.0f} s: {r['time_ratio']:.2f}x)")
    print(f"  CloudFormation calls {r['cfn_calls']} for {r['cfn_needed']} needed "
          f"({r['calls_ratio']:.2f}x); max SignalResource attempts {r['max_signal_attempts']}")
    for action in sorted(r["calls"]):
        print(f"  {action:<32} calls {r['calls'][action]:>6}  "
              f"throttled {r['throttled'].get(action, 0):>6}")
    for t in r.get("failed_tails", []):
        print(f"  {t}")


def main() -> int:
    n = int(os.environ.get("BENCH_FLEET", "40"))
    rate = float(os.environ.get("BENCH_FLEET_RATE", "25"))
    if n <= 0:
        return 0
    r = fleet(bootstrap_bin(), n, rate, rate * 4, os.environ.get("BENCH_FLEET_BUCKETS", "shared"))
    report(r)
    return 0 if r.get("success") == n else 1


if __name__ == "__main__":
    sys.exit(main())
