"""Benchmarks of whole runs against the doubles: wall time and peak RSS of the binary.

Prints figures; asserts nothing about them (targets live in the issue notes, not in tests).
Run through scripts/bench.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.aws import MotoServer, create_network, create_stack, example_template  # noqa: E402
from harness.instance import Instance, bootstrap_bin  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TIME = shutil.which("time", path="/usr/bin:/bin") or sys.exit(
    "GNU time is needed for peak RSS: apt-get install time")


def measure(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB, exit code) of one run of the binary.

    Peak RSS comes from GNU time, not from our own wait4: any child of this (large) Python
    process inherits its resident-set high-water mark across exec, so only a grandchild
    spawned by a small process reports the binary's own figure.
    """
    rss_file = os.path.join(cwd, "bench-rss.txt")
    err_file = os.path.join(cwd, "bench-stderr.txt")
    with open(err_file, "w") as err:
        t = time.monotonic()
        proc = subprocess.run([TIME, "-f", "%M", "-o", rss_file, *argv], env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                              start_new_session=True)
        wall = time.monotonic() - t
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} exited {proc.returncode}:\n{Path(err_file).read_text(errors='replace')}")
    rss = int(Path(rss_file).read_text().split()[-1])
    return wall, rss, proc.returncode


def summary(name: str, rows: list[tuple[float, int, int]]) -> None:
    walls = [r[0] for r in rows]
    rss = [r[1] for r in rows]
    print(f"{name:<44} runs={len(rows):<3} wall median {statistics.median(walls)*1000:8.1f} ms"
          f"  min {min(walls)*1000:8.1f} ms  peak RSS max {max(rss)/1024:6.1f} MiB")


def main() -> None:
    binary = bootstrap_bin()
    print(f"binary: {binary} ({binary.stat().st_size/1e6:.1f} MB)")
    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-bench-"))
    moto = MotoServer(work / "moto.log").start()
    try:
        network = create_network(moto)
        body = example_template("stack.yml")
        for mode, delay, label in (("ok", 0.0, "agent registers at once"),
                                   ("slow", 2.0, "agent registers after 2 s")):
            rows = []
            for i in range(RUNS):
                inst = Instance(moto, work / f"run-{delay}-{i}")
                try:
                    stack = create_stack(moto, network, body)
                    inst.use_stack(stack)
                    inst.configure(agent={"mode": mode, "delay": delay})
                    argv = [str(binary), *stack.run_args(), "--root", str(inst.root),
                            "--introspection-url", inst.introspection_url]
                    rows.append(measure(argv, inst.env(), str(inst.workdir)))
                finally:
                    inst.close()
            summary(f"full run ({label})", rows)

        inst = Instance(moto, work / "dry")
        try:
            argv = [str(binary), "--dry-run", "--template",
                    str(Path(__file__).resolve().parents[2] / "examples/todobackend/stack.yml")]
            summary("dry run of the example template",
                    [measure(argv, inst.env(), str(inst.workdir)) for _ in range(RUNS)])
            summary("--help", [measure([str(binary), "--help"], inst.env(), str(inst.workdir))
                               for _ in range(RUNS)])
        finally:
            inst.close()
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
