"""Benchmarks of single runs against the doubles (moto, the IMDS double, fake systemd + agent):

* overhead (issue 18 target 2), against *instant* doubles ([`overhead_instant`], see
  tests/bench/instant.py): a full `run` whose agent is already registered and whose systemctl
  answers at once: wall time, peak RSS (anonymous and file-backed), CPU time and threads of the
  binary, its own part of the wall (the run minus the join phase: the settle window, the
  introspection polls and the ECS confirmation), per-phase times, and the calls it made (IMDS
  tokens, DescribeStackResource, SignalResource). What differs from the moto-backed run:
  - every HTTP answer (IMDS token/document/signature, CloudFormation DescribeStackResource and
    SignalResource, ECS DescribeClusters and DescribeContainerInstances, the agent's
    `/v1/metadata`) is the one moto / the IMDS double / the fake agent gave the same binary for
    the same stack in one recording run at the start, served from one keep-alive port in tens of
    microseconds (no SigV4 / CFN_V1 check, no moto state: SignalResource changes nothing);
  - the agent answers `/v1/metadata` from the first poll (registered before the run starts), so
    the join is the 1 s settle window plus the ECS confirmation;
  - `systemctl` is a POSIX sh script (units active at once, nothing fails) instead of the Python
    double, and the Init commands' path shims are sh instead of Python (the commands themselves,
    `mkdir -p` and `chown -R`, run for real under the test root);
  - the run, its binary and its command line, environment overrides and root are the same.
* overhead against the moto-backed doubles ([`overhead`]): the same run with the Python doubles,
  kept for comparison (the figure reported before instant doubles existed);
* detection: the agent starts answering at a random moment; time from its first answer to the
  SignalResource request, the introspection requests per second meanwhile; a terminal agent
  exit (`ecs` unit failed, exit 5) to the FAILURE signal; and a terminal error in the agent's log
  (its registration denied: exit 1, restarted by the ecs-init-like supervisor, the unit stays
  active) from the agent writing the line to the FAILURE signal.

Functions return figures; they assert nothing (the targets live in tests/bench/suite.py).
Run through scripts/bench.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.aws import MotoServer, StackInfo, create_network, create_stack, example_template  # noqa: E402,F401
from harness.instance import HARNESS_BIN, SANDBOX_BIN, Instance  # noqa: E402

import instant  # noqa: E402


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(argv: list[str], env: dict[str, str], cwd: str) -> dict[str, Any]:
    """Wall seconds, peak RSS KiB, CPU seconds, exit code and stderr of one run of the binary.

    Peak RSS and CPU time are the binary's own, sampled from /proc/<pid> every 2 ms until it
    exits (VmHWM only grows, so the last sample is the peak to within the last 2 ms). Not from
    wait4 or GNU time: their figure is the largest of the process and every child it waited
    for (the Python systemctl double), and a child of this large Python process inherits its
    high-water mark across exec. Also: `cpu_ns`, the scheduler's on-CPU nanoseconds summed
    over the binary's threads (/proc/<pid>/task/*/schedstat; `cpu` is in 10 ms clock ticks),
    the anonymous / file-backed split of the largest RSS sample, and the most threads seen.
    """
    err_file = os.path.join(cwd, "bench-stderr.txt")
    hwm, cpu, cpu_ns, threads, rss, split = 0, 0.0, 0, 0, 0, (0, 0)
    tick = os.sysconf("SC_CLK_TCK")
    with open(err_file, "w") as err:
        t = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                stat = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                f = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
                     if line.startswith(("VmHWM:", "VmRSS:", "RssAnon:", "RssFile:", "Threads:"))}
                hwm = max(hwm, int(f["VmHWM"]))
                threads = max(threads, int(f["Threads"]))
                if int(f["VmRSS"]) > rss:
                    rss, split = int(f["VmRSS"]), (int(f["RssAnon"]), int(f["RssFile"]))
                cpu = max(cpu, (int(stat[11]) + int(stat[12])) / tick)
                ns = sum(int(Path(f"/proc/{proc.pid}/task/{tid}/schedstat").read_text().split()[0])
                         for tid in os.listdir(f"/proc/{proc.pid}/task"))
                cpu_ns = max(cpu_ns, ns)
            except (OSError, IndexError, ValueError, KeyError):
                pass
            if time.monotonic() - t > 120:
                os.killpg(proc.pid, 9)
            time.sleep(0.002)
        wall = time.monotonic() - t
    stderr = Path(err_file).read_text(errors="replace")
    return {"wall": wall, "rss_kib": hwm, "cpu": cpu, "cpu_ns": cpu_ns, "threads": threads,
            "anon_kib": split[0], "file_kib": split[1], "code": proc.returncode,
            "stderr": stderr}


def phases(stderr: str) -> dict[str, int]:
    """duration_ms per phase, from the run's JSON events (src/boot/events.rs)."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        if line.startswith('{"event":"ecs-bootstrap.'):
            ev = json.loads(line)
            out[ev.get("phase") or "run"] = int(ev["duration_ms"])
    return out


def _run_args(binary: Path, stack: StackInfo, inst: Instance) -> list[str]:
    return [str(binary), *stack.run_args(), "--root", str(inst.root),
            "--introspection-url", inst.introspection_url]


def overhead(moto: MotoServer, binary: Path, work: Path, runs: int) -> dict[str, Any]:
    network = create_network(moto)
    body = example_template("stack.yml")
    rows = []
    for i in range(runs):
        inst = Instance(moto, work / f"overhead-{i}")
        try:
            stack = create_stack(moto, network, body)
            inst.use_stack(stack)
            inst.configure(agent={"mode": "ok"})
            start = time.time()
            m = measure(_run_args(binary, stack, inst), inst.env(), str(inst.workdir))
            if m["code"] != 0:
                sys.exit(f"overhead run exited {m['code']}:\n{m['stderr'][-3000:]}")
            ph = phases(m["stderr"])
            m["phases"] = ph
            m["own"] = m["wall"] - ph.get("join", 0) / 1000
            # The Python systemctl double (services) and the template's own Init commands
            # (init) are the doubles' time, not the binary's.
            m["services"] = (ph.get("services", 0) + ph.get("init", 0)) / 1000
            m["join"] = ph.get("join", 0) / 1000
            reqs = [r for r in moto.requests() if r["time"] >= start
                    and r["action"] in ("DescribeStackResource", "SignalResource",
                                        "DescribeStackResources")]
            m["cfn_calls"] = {a: sum(1 for r in reqs if r["action"] == a)
                              for a in sorted({r["action"] for r in reqs})}
            m["imds_tokens"] = sum(1 for q in inst.imds.requests()
                                   if q.method == "PUT" and "fake-ecs-agent" not in q.user_agent)
            rows.append(m)
        finally:
            inst.close()
    return {
        "runs": runs,
        "wall_median": statistics.median(r["wall"] for r in rows),
        "own_median": statistics.median(r["own"] for r in rows),
        "own_minus_services_median": statistics.median(r["own"] - r["services"] for r in rows),
        "services_median": statistics.median(r["services"] for r in rows),
        "join_median": statistics.median(r["join"] for r in rows),
        "rss_max_mib": max(r["rss_kib"] for r in rows) / 1024,
        "cpu_median": statistics.median(r["cpu"] for r in rows),
        "imds_tokens_max": max(r["imds_tokens"] for r in rows),
        "cfn_calls": rows[-1]["cfn_calls"],
        "phases_ms_last_run": rows[-1]["phases"],
    }


def _record(moto: MotoServer, binary: Path, work: Path) -> tuple[dict[str, Any], list[str],
                                                                  dict[str, str]]:
    """One run of `binary` against the moto-backed doubles through three recorders: the answers
    it got (see instant.py), its argv and environment (endpoints still the recorders')."""
    network = create_network(moto)
    stack = create_stack(moto, network, example_template("stack.yml"))
    inst = Instance(moto, work / "overhead-recording")
    recs = [instant.Recorder(moto.url), instant.Recorder(inst.imds.url),
            instant.Recorder(inst.introspection_url)]
    try:
        inst.use_stack(stack)
        inst.configure(agent={"mode": "ok"})
        env = inst.env()
        env["AWS_ENDPOINT_URL"] = recs[0].url
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = recs[1].url
        argv = [str(binary), *stack.run_args(), "--root", "ROOT", "--introspection-url",
                recs[2].url]
        m = measure([a.replace("ROOT", str(inst.root)) for a in argv], env, str(inst.workdir))
        if m["code"] != 0:
            sys.exit(f"overhead recording run exited {m['code']}:\n{m['stderr'][-3000:]}")
        table = {k: v for r in recs for k, v in r.table.items()}
    finally:
        for r in recs:
            r.stop()
        inst.close()
    return table, argv, env


def overhead_instant(moto: MotoServer, binary: Path, work: Path, runs: int,
                     perf_runs: int = 0) -> dict[str, Any]:
    """The overhead runs against instant doubles (the module docstring says what differs)."""
    if perf_runs and shutil.which("perf") is None:
        perf_runs = 0
    table, argv, rec_env = _record(moto, binary, work)
    canned = instant.CannedServer(table)
    bindir = instant.write_bin(work / "instant-bin")
    harness_dirs = {str(HARNESS_BIN), str(SANDBOX_BIN)}
    rows = []
    try:
        for i in range(runs + perf_runs):
            d = work / f"overhead-instant-{i}"
            for sub in ("root", "systemd", "home"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            for f in ("aws-config", "aws-credentials"):
                (d / "home" / f).touch()
            env = dict(rec_env)
            env.update({
                "AWS_ENDPOINT_URL": canned.url, "AWS_EC2_METADATA_SERVICE_ENDPOINT": canned.url,
                "AWS_CONFIG_FILE": str(d / "home/aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(d / "home/aws-credentials"),
                "ECS_BOOTSTRAP_ROOT": str(d / "root"), "FAKE_SYSTEMD_DIR": str(d / "systemd"),
                "HOME": str(d / "home"),
                "PATH": os.pathsep.join([str(bindir)] + [x for x in rec_env["PATH"].split(
                    os.pathsep) if x not in harness_dirs]),
            })
            run_argv = [a.replace("ROOT", str(d / "root")) for a in argv]
            run_argv[-1] = canned.url
            if i >= runs:
                # task-clock of the binary alone (--no-inherit: not its children), in ms
                out = d / "perf.csv"
                m = measure(["perf", "stat", "--no-inherit", "-x,", "-e", "task-clock", "-o",
                             str(out), "--", *run_argv], env, str(d))
                m["perf_task_ms"] = float(out.read_text().split("task-clock")[0]
                                          .strip().splitlines()[-1].split(",")[0])
            else:
                m = measure(run_argv, env, str(d))
            log = canned.take_log()
            if m["code"] != 0:
                sys.exit(f"instant overhead run exited {m['code']}:\n{m['stderr'][-3000:]}")
            ph = phases(m["stderr"])
            m["phases"] = ph
            m["join"] = ph.get("join", 0) / 1000
            m["own"] = m["wall"] - m["join"]
            m["calls"] = {}
            for q in log:
                m["calls"][q["action"]] = m["calls"].get(q["action"], 0) + 1
            m["misses"] = sorted({q["key"] for q in log if not q["hit"]})
            m["double_ms"] = sum(q["t1"] - q["t0"] for q in log) * 1000
            calls = (d / "systemd/calls.txt")
            m["systemctl_calls"] = len(calls.read_text().splitlines()) if calls.exists() else 0
            rows.append(m)
    finally:
        canned.stop()
    timed, perfed = rows[:runs], rows[runs:]
    med = statistics.median
    last = timed[-1]
    return {
        "runs": runs,
        "recorded_answers": sorted(a["action"] for a in table.values()),
        "wall_median": med(r["wall"] for r in timed),
        "own_median": med(r["own"] for r in timed),
        "own_min": min(r["own"] for r in timed),
        "join_median": med(r["join"] for r in timed),
        "phases_ms_median": {k: med(r["phases"].get(k, 0) for r in timed)
                             for k in last["phases"]},
        "rss_max_mib": max(r["rss_kib"] for r in timed) / 1024,
        "rss_median_mib": med(r["rss_kib"] for r in timed) / 1024,
        "anon_mib_at_peak": med(r["anon_kib"] for r in timed) / 1024,
        "file_mib_at_peak": med(r["file_kib"] for r in timed) / 1024,
        "threads_max": max(r["threads"] for r in timed),
        "cpu_ms_median": med(r["cpu_ns"] for r in timed) / 1e6,
        "perf_task_ms_median": med(r["perf_task_ms"] for r in perfed) if perfed else None,
        "double_ms_median": med(r["double_ms"] for r in timed),
        "calls": last["calls"],
        "systemctl_calls": last["systemctl_calls"],
        "misses": sorted({k for r in rows for k in r["misses"]}),
        "imds_tokens_max": max(r["calls"].get("PUT /latest/api/token", 0) for r in timed),
    }


# The agent's RegisterContainerInstance denied: the real agent logs `Received terminal error from
# RegisterContainerInstance call, exiting` and exits 1 (ecs_client.go:262-270, agent.go:509-510
# @8dfceca6 of amazon-ecs-agent), and ecs-init restarts it forever: only its log tells.
DENY_REGISTER = {"action": "RegisterContainerInstance", "service": "ecs", "status": 400,
                 "code": "AccessDeniedException",
                 "message": "User: arn:aws:sts::123456789012:assumed-role/r/i is not authorized "
                            "to perform: ecs:RegisterContainerInstance"}
MARKS = {"ok": "agent-first-answer", "exit5": "agent-terminal-exit",
         "log": "agent-terminal-error"}


def _detection_trial(moto: MotoServer, binary: Path, work: Path, stack: StackInfo, n: int,
                     kind: str) -> dict[str, Any]:
    """kind: "ok" (the agent answers after 0-2 s), "exit5" (ecs.service fails: a terminal
    exit 5), "log" (a terminal error in the agent's log, exit 1, restarted by ecs-init)."""
    inst = Instance(moto, work / f"detect-{kind}-{n}")
    try:
        inst.use_stack(stack)
        if kind == "exit5":
            inst.configure(agent={"mode": "exit5"})
        elif kind == "log":
            inst.configure(agent={"mode": "ok", "delay": 0.0})
        else:
            inst.configure(agent={"mode": "slow", "delay": random.uniform(0.0, 2.0)})
        m = measure(_run_args(binary, stack, inst), inst.env(), str(inst.workdir))
        mark = inst.systemd_dir / MARKS[kind]
        if not mark.exists():
            return {"error": f"no {mark.name} (exit {m['code']}): {m['stderr'][-500:]}"}
        t0 = float(mark.read_text())
        sig = [s for s in moto.signals(stack.name) if s["UniqueId"] == stack.instance_id]
        if not sig:
            return {"error": f"no signal (exit {m['code']}): {m['stderr'][-500:]}"}
        status = sig[-1]["Status"]
        return {"latency": sig[-1]["time"] - t0, "status": status,
                "join_s": phases(m["stderr"]).get("join", 0) / 1000}
    finally:
        inst.close()


def detection(moto: MotoServer, binary: Path, work: Path, trials: int, failures: int,
              concurrency: int) -> dict[str, Any]:
    """Each trial gets its own stack (one instance each), so signals never collide."""
    network = create_network(moto)
    body = example_template("stack.yml")
    stacks = [create_stack(moto, network, body) for _ in range(trials + 2 * failures)]
    with ThreadPoolExecutor(concurrency) as pool:
        ok = list(pool.map(lambda a: _detection_trial(moto, binary, work, a[1], a[0], "ok"),
                           enumerate(stacks[:trials])))
        bad = list(pool.map(lambda a: _detection_trial(moto, binary, work, a[1], a[0], "exit5"),
                            enumerate(stacks[trials:trials + failures])))
        moto.set_faults([DENY_REGISTER])
        try:
            logged = list(pool.map(
                lambda a: _detection_trial(moto, binary, work, a[1], a[0], "log"),
                enumerate(stacks[trials + failures:])))
        finally:
            moto.set_faults([])
    errors = [r["error"] for r in ok + bad + logged if "error" in r]
    lat = [r["latency"] for r in ok if "latency" in r and r["status"] == "SUCCESS"]
    flat = [r["latency"] for r in bad if "latency" in r and r["status"] == "FAILURE"]
    llat = [r["latency"] for r in logged if "latency" in r and r["status"] == "FAILURE"]
    # Introspection requests per second: one GET per POLL while waiting, the same in the settle
    # window; measured from the code's constant is circular, so count them in one extra trial.
    return {
        "trials": trials, "failures": failures, "concurrency": concurrency,
        "errors": errors[:3], "n_errors": len(errors),
        "ok_p50": statistics.median(lat) if lat else None,
        "ok_p99": pct(lat, 99) if lat else None, "ok_max": max(lat) if lat else None,
        "fail_p50": statistics.median(flat) if flat else None,
        "fail_p99": pct(flat, 99) if flat else None,
        "ok_signalled": len(lat), "fail_signalled": len(flat),
        "log_p50": statistics.median(llat) if llat else None,
        "log_p99": pct(llat, 99) if llat else None, "log_signalled": len(llat),
    }


def introspection_rate(moto: MotoServer, binary: Path, work: Path) -> float:
    """Requests/s the run makes to a port that never opens (the agent not yet registered):
    counted on a listening socket that accepts and answers 503, for 3 s."""
    import http.server
    import threading
    hits: list[float] = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits.append(time.monotonic())
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    network = create_network(moto)
    stack = create_stack(moto, network, example_template("stack.yml"))
    inst = Instance(moto, work / "introspection-rate")
    try:
        inst.use_stack(stack)
        inst.configure(agent={"mode": "never"})
        argv = [str(binary), *stack.run_args("--no-signal", "--timeout", "4"),
                "--root", str(inst.root),
                "--introspection-url", f"http://127.0.0.1:{srv.server_address[1]}"]
        subprocess.run(argv, env=inst.env(), cwd=str(inst.workdir), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    finally:
        inst.close()
        srv.shutdown()
    if len(hits) < 2:
        return 0.0
    return (len(hits) - 1) / (hits[-1] - hits[0])
