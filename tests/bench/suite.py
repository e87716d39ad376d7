"""The benchmark suite (issue 18): four measurements, one table, bench/RESULTS.md.

1. fleet (optional, --fleet N): N instances of one Auto Scaling group boot at once against
   CloudFormation throttled in one token bucket shared by its actions (--buckets per-action for
   the other model), ECS at 4x that rate; real `run` processes, or --fleet-sim for the same
   CloudFormation code path driven N times in one process (examples/fleet_sim.rs);
2. per-instance overhead: a full run against instant doubles (recorded from moto and the
   Python doubles at the start, tests/bench/instant.py), and against those doubles for comparison;
3. detection latency: agent first answer -> SUCCESS signal, terminal agent error -> FAILURE;
4. footprint: binary sizes, the shipped dist musl binary against 12 MB (--dist builds it), and,
   with --cold-build, a timed cold release build.
And, with --model, the retry/pacing policy model (backoff_model.py): a simulation of the policies
the fleet benchmark cannot run in minutes, beside it.

Everything talks to 127.0.0.1 only and is bounded in time. Targets are here, printed as
met/missed beside the figures; nothing fails on a missed target.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_boot  # noqa: E402
import bench_fleet  # noqa: E402
from harness.aws import MotoServer  # noqa: E402
from harness.instance import bootstrap_bin  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, what: str, figure: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append((what, figure, target, verdict))

    def render(self) -> str:
        head = ("measurement", "figure", "target", "")
        w = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"  # noqa: E731
        return "\n".join([line(head), "|" + "|".join("-" * (x + 2) for x in w) + "|",
                          *map(line, self.rows)])


def fmt(v: float | None, unit: str = "s", scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v * scale:.{digits}f} {unit}"


def fleet_rows(t: Table, r: dict[str, Any]) -> None:
    if "error" in r:
        t.add(f"fleet N={r.get('n')}", r["error"])
        return
    tag = (f"fleet {r['mode']} N={r['n']} {r['cfn_rate']:g}/s {r['buckets']}"
           + (f" paced@{r['pace']:g}" if r.get("pace") else ""))
    t.add(f"{tag}: SUCCESS", f"{r['success']}/{r['n']} (FAILURE {r['failure']})",
          "100 %, 0 FAILURE", r["success"] == r["n"] and r["failure"] == 0)
    t.add(f"{tag}: last signal", f"{fmt(r['max'], digits=1)} = {r['time_ratio']:.2f}x ideal "
          f"{r['ideal']:.0f} s (p50 {fmt(r['p50'], digits=1)}, p95 {fmt(r['p95'], digits=1)})",
          "<= 1.3x ideal", r["time_ratio"] is not None and r["time_ratio"] <= 1.3)
    per = ", ".join(f"{a.replace('Describe', 'D').replace('Resource', 'R')} "
                    f"{r['calls'][a]}/{r['throttled'].get(a, 0)}t"
                    for a in sorted(r["calls"]) if a in bench_fleet.CFN_ACTIONS)
    t.add(f"{tag}: CFN calls", f"{r['cfn_calls']} = {r['calls_ratio']:.2f}x needed ({per}); "
          f"max signal attempts {r['max_signal_attempts']}", "<= 1.5x needed",
          r["calls_ratio"] <= 1.5)
    if r.get("rss_max_mib"):
        t.add(f"{tag}: peak RSS per instance", fmt(r["rss_max_mib"], "MiB", digits=1))


def settle_secs() -> float:
    """SETTLE of src/boot/join.rs, read from the source so the figure follows the code."""
    import re
    src = (REPO / "src/boot/join.rs").read_text()
    m = re.search(r"pub const SETTLE: Duration = Duration::from_(secs|millis)\((\d+)\)", src)
    if not m:
        raise SystemExit("suite.py: SETTLE not found in src/boot/join.rs")
    return int(m.group(2)) / (1000 if m.group(1) == "millis" else 1)


def model_rows(t: Table, rate: float) -> list[dict[str, Any]]:
    """The policy model at N=1000 in the table (every size in the raw figures): a simulation,
    not a measurement (backoff_model.py says what it models and how it was checked)."""
    import backoff_model
    rows = backoff_model.run(rate=rate)
    for r in rows:
        if r["n"] == 1000:
            t.add(f"model N=1000 {r['buckets']}: {r['policy']}",
                  f"time {r['time_ratio']:.2f}x ideal, calls {r['calls_ratio']:.2f}x needed, "
                  f"max attempts {r['max_attempts']}")
    return rows


# The shipped binary: packaging/build's x86_64 build (its `cargo build --locked --profile dist
# --target "$triple"` with CC_x86_64_unknown_linux_musl=musl-gcc); 12 MB is issue 18's target.
DIST_TRIPLE = "x86_64-unknown-linux-musl"
DIST_TARGET_BYTES = 12_000_000
DIST_BUILD_TIMEOUT = 1800  # fat LTO, one codegen unit: ~10 min on 2 shared cores


def dist_build() -> Path:
    """Builds the dist musl binary as packaging/build does (bounded in time); its path."""
    subprocess.run(["cargo", "build", "--locked", "--profile", "dist", "--target", DIST_TRIPLE],
                   cwd=REPO, check=True, timeout=DIST_BUILD_TIMEOUT, stdout=subprocess.DEVNULL,
                   env={**os.environ, f"CC_{DIST_TRIPLE.replace('-', '_')}": "musl-gcc"})
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / DIST_TRIPLE / "dist/ecs-bootstrap"


def sizes(t: Table, binary: Path, dist: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"binary": str(binary), "binary_mb": binary.stat().st_size / 1e6}
    t.add(f"footprint: {binary.name} under test", f"{out['binary_mb']:.1f} MB")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    release = target / "release/ecs-bootstrap"
    if release.exists():
        out["release_mb"] = release.stat().st_size / 1e6
        t.add("footprint: release (glibc, stripped)", f"{out['release_mb']:.1f} MB",
              "(dist target 12 MB)", None)
    # The shipped binary: built now (--dist), given (ECS_BOOTSTRAP_DIST_BIN), else whatever dist
    # builds the target directory holds (their age is shown: they may predate the sources).
    if dist:
        try:
            dists = [dist_build()]
        except (subprocess.SubprocessError, OSError) as e:
            out["dist_error"] = str(e)
            t.add(f"footprint: dist {DIST_TRIPLE}", f"build failed: {e}", "<= 12 MB", False)
            return out
    elif os.environ.get("ECS_BOOTSTRAP_DIST_BIN"):
        dists = [Path(os.environ["ECS_BOOTSTRAP_DIST_BIN"])]
    else:
        dists = sorted(target.glob("*musl*/dist/ecs-bootstrap"))
    for d in dists:
        size = d.stat().st_size
        age_h = (time.time() - d.stat().st_mtime) / 3600
        name = d.parts[-3] if d.parent.name == "dist" else str(d)
        out.setdefault("dist", {})[name] = {"bytes": size, "age_h": round(age_h, 2)}
        out["dist_mb"] = size / 1e6
        t.add(f"footprint: dist {name}" + ("" if age_h < 1 else f" (built {age_h:.0f} h ago)"),
              f"{size:,} B ({size / 1e6:.2f} MB)", f"<= {DIST_TARGET_BYTES:,} B",
              size <= DIST_TARGET_BYTES)
    return out


def cold_build(t: Table) -> float:
    target = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-cold-"))
    start = time.monotonic()
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(target)}, timeout=1800,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.monotonic() - start
    t.add("cold release build (2 cores)", fmt(took / 60, "min", digits=1), "<= 6 min", took <= 360)
    return took


def hup_fleet(t: Table, n: int, rate: float) -> dict[str, Any]:
    """N hup daemons polling every 15 min after booting within 120 s, and within 10 s: calls/s
    on CloudFormation and the time until a change is seen, ours against cfn-hup's schedule
    (examples/hup_fleet.rs says what is run and what is modelled)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--example", "hup_fleet"],
                   cwd=REPO, check=True, timeout=1800)
    out: dict[str, Any] = {}
    for spread in (120, 10):
        proc = subprocess.run([str(target / "release/examples/hup_fleet"), "--n", str(n),
                               "--boot-spread", str(spread), "--rate", str(rate)],
                              check=True, capture_output=True, text=True, timeout=600)
        print(proc.stdout)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        out[f"boot_spread_{spread}"] = r
        for key, name in (("ours", "hup"), ("cfn_hup", "cfn-hup")):
            f = r[key]
            t.add(f"hup fleet N={n}, 15 min, booted within {spread} s: {name}",
                  f"{f['mean_per_s']:.2f} calls/s mean, peak {f['peak_boot']}/s at boot, "
                  f"{f['calls_over_rate']} calls over {rate:g}/s; change seen p50 "
                  f"{f['applied_p50']:.0f} s, p99 {f['applied_p99']:.0f} s",
                  f"peak <= {rate:g}/s" if key == "ours" else "",
                  f["peak_boot"] <= rate if key == "ours" else None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fleet", type=int, default=0, help="fleet size N (0 = skip the fleet)")
    ap.add_argument("--fleet-sim", action="store_true",
                    help="drive the fleet in one process (examples/fleet_sim.rs), not N processes")
    ap.add_argument("--fleet-rate", type=float, default=25.0,
                    help="CloudFormation requests/s (ECS gets 4x)")
    ap.add_argument("--buckets", choices=("shared", "per-action", "both"), default="shared")
    ap.add_argument("--pace", type=float, default=None, metavar="RATE",
                    help="give the fleet's runs --group-size N --cfn-rate RATE")
    ap.add_argument("--pace-per-action", type=float, default=None, metavar="RATE",
                    help="--cfn-rate for the per-action variant (default: --pace); an account "
                         "known to have one bucket per action may count on twice the rate")
    ap.add_argument("--model", action="store_true",
                    help="the retry/pacing policy model (tests/bench/backoff_model.py), seconds")
    ap.add_argument("--hup-fleet", type=int, default=0, metavar="N",
                    help="the hup fleet's schedule (examples/hup_fleet.rs) for N instances (issue 15)")
    ap.add_argument("--runs", type=int, default=7, help="overhead runs (instant doubles)")
    ap.add_argument("--perf-runs", type=int, default=3,
                    help="overhead runs under `perf stat` for the binary's task-clock (0: none)")
    ap.add_argument("--runs-moto", type=int, default=3,
                    help="overhead runs against moto and the Python doubles, for comparison")
    ap.add_argument("--trials", type=int, default=20, help="detection trials (issue: 100)")
    ap.add_argument("--failure-trials", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=2, help="detection trials at once")
    ap.add_argument("--cold-build", action="store_true", help="time a cold release build")
    ap.add_argument("--dist", action="store_true",
                    help="footprint: build the shipped dist musl binary first (~10 min, as "
                         "packaging/build x86_64); else ECS_BOOTSTRAP_DIST_BIN, else target/*musl*/dist")
    ap.add_argument("--skip", default="", help="comma-separated: overhead,detection,footprint")
    ap.add_argument("--results", default=str(REPO / "bench/RESULTS.md"))
    ap.add_argument("--label", default="", help="what was measured (e.g. the lever under test)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    binary = bootstrap_bin()
    t = Table()
    raw: dict[str, Any] = {}

    if args.fleet > 0:
        for b in (("shared", "per-action") if args.buckets == "both" else (args.buckets,)):
            pace = args.pace
            if b == "per-action" and args.pace_per_action is not None:
                pace = args.pace_per_action
            if args.fleet_sim:
                import fleet_sim
                r = fleet_sim.fleet(args.fleet, args.fleet_rate, args.fleet_rate * 4, b,
                                    pace=pace)
            else:
                r = bench_fleet.fleet(binary, args.fleet, args.fleet_rate, args.fleet_rate * 4, b,
                                      pace=pace)
            bench_fleet.report(r)
            fleet_rows(t, r)
            raw[f"fleet_{b}"] = r

    if args.model:
        raw["model"] = model_rows(t, args.fleet_rate)

    if args.hup_fleet > 0:
        raw["hup_fleet"] = hup_fleet(t, args.hup_fleet, args.fleet_rate)

    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-bench-"))
    if not {"overhead", "detection"} <= skip:
        moto = MotoServer(work / "moto.log").start()
        try:
            if "overhead" not in skip:
                o = bench_boot.overhead_instant(moto, binary, work, args.runs, args.perf_runs)
                raw["overhead"] = o
                ph = o["phases_ms_median"]
                t.add(f"overhead (instant doubles): wall, {o['runs']} runs (median)",
                      fmt(o["wall_median"], "ms", 1000, 0)
                      + f" (join {fmt(o['join_median'], 'ms', 1000, 0)}: 1 s settle + ECS check)")
                t.add("overhead (instant doubles): wall minus join", fmt(
                    o["own_median"], "ms", 1000, 0) + f" (min {fmt(o['own_min'], 'ms', 1000, 0)};"
                    f" init {ph.get('init', 0):.0f} ms, services {ph.get('services', 0):.0f} ms,"
                    f" doubles' HTTP {o['double_ms_median']:.1f} ms)", "<= 30 ms",
                    o["own_median"] <= 0.030)
                t.add("overhead (instant doubles): peak RSS", fmt(o["rss_max_mib"], "MiB", digits=1)
                      + f" (anon {o['anon_mib_at_peak']:.1f}, file {o['file_mib_at_peak']:.1f};"
                      f" {o['threads_max']} thread(s))", "<= 12 MiB", o["rss_max_mib"] <= 12)
                t.add("overhead (instant doubles): CPU time (median)",
                      fmt(o["cpu_ms_median"], "ms", digits=1) + (
                          f" (perf task-clock {o['perf_task_ms_median']:.1f} ms)"
                          if o["perf_task_ms_median"] is not None else ""))
                c = o["calls"]
                ok = (o["imds_tokens_max"] == 1 and c.get("DescribeStackResource") == 1
                      and c.get("SignalResource") == 1 and not o["misses"])
                t.add("overhead (instant doubles): calls",
                      ", ".join(f"{k} {v}" for k, v in c.items())
                      + f"; systemctl {o['systemctl_calls']}"
                      + (f"; UNANSWERED {o['misses']}" if o["misses"] else ""),
                      "1 token, 1 DSR, 1 signal", ok)
                if args.runs_moto:
                    m = bench_boot.overhead(moto, binary, work, args.runs_moto)
                    raw["overhead_moto"] = m
                    t.add(f"overhead (moto + Python doubles, {m['runs']} runs): wall minus join",
                          fmt(m["own_median"], "ms", 1000, 0) + " (minus services + init "
                          + fmt(m["own_minus_services_median"], "ms", 1000, 0) + f"); peak RSS "
                          f"{m['rss_max_mib']:.1f} MiB; CPU {fmt(m['cpu_median'], 'ms', 1000, 0)}")
            if "detection" not in skip:
                d = bench_boot.detection(moto, binary, work, args.trials, args.failure_trials,
                                         args.concurrency)
                raw["detection"] = d
                t.add(f"detection: agent answers -> SUCCESS ({d['ok_signalled']}/{d['trials']})",
                      f"p50 {fmt(d['ok_p50'], 'ms', 1000, 0)}, p99 {fmt(d['ok_p99'], 'ms', 1000, 0)}",
                      "p99 <= 250 ms", d["ok_p99"] is not None and d["ok_p99"] <= 0.25)
                if d["ok_p99"] is not None:
                    # The run holds a fresh registration for the settle window before it counts
                    # (issue 17's guard against an agent that dies as it registers): the rest
                    # is the poll's and the signal's latency.
                    s = settle_secs()
                    t.add(f"detection: the same minus the {s:g} s settle window (src/boot/join.rs)",
                          f"p50 {fmt(d['ok_p50'] - s, 'ms', 1000, 0)}, "
                          f"p99 {fmt(d['ok_p99'] - s, 'ms', 1000, 0)}",
                          "p99 <= 250 ms", d["ok_p99"] - s <= 0.25)
                rate = bench_boot.introspection_rate(moto, binary, work)
                raw["introspection_rate"] = rate
                t.add("detection: introspection requests/s", f"{rate:.1f}", "<= 10", rate <= 10.5)
                t.add(f"detection: agent exit 5 -> FAILURE ({d['fail_signalled']}/{d['failures']})",
                      f"p50 {fmt(d['fail_p50'], 'ms', 1000, 0)}, p99 {fmt(d['fail_p99'], 'ms', 1000, 0)}",
                      "p99 <= 2 s", d["fail_p99"] is not None and d["fail_p99"] <= 2)
                t.add(f"detection: terminal error in the agent's log -> FAILURE "
                      f"({d['log_signalled']}/{d['failures']})",
                      f"p50 {fmt(d['log_p50'], 'ms', 1000, 0)}, p99 {fmt(d['log_p99'], 'ms', 1000, 0)}",
                      "p99 <= 2 s", d["log_p99"] is not None and d["log_p99"] <= 2)
                if d["n_errors"]:
                    print(f"detection: {d['n_errors']} trials without a figure: {d['errors']}")
        finally:
            moto.stop()
    if "footprint" not in skip:
        raw["sizes"] = sizes(t, binary, args.dist)
    if args.cold_build:
        raw["cold_build_s"] = cold_build(t)

    table = t.render()
    print(table)
    machine = (f"{platform.node()}: {os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
               f"{platform.platform()}; load average {os.getloadavg()[0]:.1f} at the end")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                            capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, text=True,
                           capture_output=True).stdout.strip()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## {stamp}{' — ' + args.label if args.label else ''}\n\n"
               f"- machine: {machine}\n- commit: {commit}{' (src modified)' if dirty else ''}; "
               f"binary {binary}\n- command: `scripts/bench {' '.join(sys.argv[1:])}`\n\n"
               f"{table}\n\n<details><summary>raw figures</summary>\n\n```json\n"
               f"{json.dumps(raw, indent=1, default=str)}\n```\n</details>\n")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    head = ("# Benchmark results\n\nWritten by `scripts/bench` (tests/bench/suite.py); newest "
            "first. Targets: issue 18.\n\n")
    old = results.read_text() if results.exists() else head
    body = old[len(head):] if old.startswith(head) else old
    results.write_text(head + section + "\n" + body)
    print(f"written: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
