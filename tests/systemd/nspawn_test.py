#!/usr/bin/env python3
"""ecs-bootstrap under a real systemd (PID 1 in a systemd-nspawn container), booted twice.

The container boots the host's /usr with a volatile (tmpfs) root and a private network: only
its own loopback, where this test's IMDS double (169.254.169.254:80) and moto (127.0.0.1:5000)
run as units. Installed into it: the binary as /usr/bin/ecs-bootstrap (read-only overlay on
/usr), the real systemd/ecs-bootstrap.service (enabled), an /etc/ecs-bootstrap/env pointing the
SDK at moto and giving no stack flags (zero-config), fake docker/ecs units ordered like the real
ones, and a fake cloud-final.service running examples/userdata/userdata.sh (so the binary's
hand-off from UserData to a transient unit runs under a real systemd too).

Boot 1 asserts: the unit ran once and succeeded, docker and ecs were started, moto received
exactly one SignalResource SUCCESS for the Auto Scaling group from this instance, the UserData
call handed off to ecs-bootstrap-boot.service, which exited 0 without doing the work, the result reached the console, and the boot finished
(no deadlock between the unit, cloud-final and ecs.service).
Boot 2 (same /var/lib/ecs-bootstrap, /etc/ecs and /etc/systemd/system) asserts: the unit ran,
said SKIPPED and made no AWS call; no new signal.

Usage: nspawn_test.py [--bin PATH] [--keep]   (root; needs systemd-nspawn and the repo's .venv)
Exit 0 = passed, 1 = failed, 77 = skipped (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SKIP = 77
BOOT_TIMEOUT = 240  # seconds for one boot to settle; generous: 2 shared cores
CGROUP_ROOTS = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")]


def log(msg: str) -> None:
    print(f"[nspawn-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Skip(Exception):
    pass


class Failed(Exception):
    pass


def check(cond: bool, what: str, detail: str = "") -> None:
    if not cond:
        raise Failed(f"{what}\n{detail}" if detail else what)
    log(f"ok: {what}")


def preflight(binary: Path) -> Path:
    if os.geteuid() != 0:
        raise Skip("needs root (systemd-nspawn)")
    if shutil.which("systemd-nspawn") is None:
        raise Skip("systemd-nspawn not installed (Debian package systemd-container)")
    if shutil.which("nsenter") is None:
        raise Skip("nsenter not installed")
    if not binary.is_file():
        raise Skip(f"binary {binary} not built")
    py = REPO / ".venv" / "bin" / "python"
    if not py.exists():
        raise Skip(f"{py} missing (scripts/test creates it)")
    return py


class Container:
    def __init__(self, name: str, work: Path, py: Path, binds: list[str]):
        self.name = name
        self.work = work
        self.py = py
        self.binds = binds
        self.proc: subprocess.Popen | None = None
        self.pid1: int | None = None

    def boot(self, n: int) -> None:
        console = open(self.work / f"console-{n}.log", "wb")
        argv = ["systemd-nspawn", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
                # read-only, not pipe: with pipe the container has no /dev/console, and the
                # unit's journal+console output is part of what is tested.
                "--private-network", "--console=read-only", "-M", self.name,
                f"--overlay-ro=/usr:{self.work / 'usr'}:/usr", *self.binds,
                "-b", "systemd.firstboot=off"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.pid1 is None:
            if self.proc.poll() is not None:
                raise Failed(f"systemd-nspawn exited {self.proc.returncode}:\n"
                             + (self.work / f"console-{n}.log").read_text(errors="replace"))
            for p in Path("/proc").iterdir():
                if p.name.isdigit():
                    try:
                        st = (p / "status").read_text()
                    except OSError:
                        continue
                    ppid = next((ln.split()[1] for ln in st.splitlines() if ln.startswith("PPid:")), "")
                    if ppid == str(self.proc.pid):
                        self.pid1 = int(p.name)
            if time.monotonic() > deadline:
                raise Failed("container PID 1 not found")
            time.sleep(0.2)
        log(f"boot {n}: nspawn pid {self.proc.pid}, container PID 1 = host pid {self.pid1}")

    def sh(self, cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        assert self.pid1 is not None
        return subprocess.run(["nsenter", "-t", str(self.pid1), "-m", "-u", "-i", "-n", "-p",
                               "/bin/sh", "-c", cmd], capture_output=True, text=True,
                              timeout=timeout)

    def wait_settled(self) -> str:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            try:
                r = self.sh("systemctl is-system-running --wait", timeout=max(5, deadline - time.monotonic()))
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    return state
            except subprocess.TimeoutExpired:
                state = "timeout"
            if time.monotonic() > deadline:
                jobs = self.sh("systemctl list-jobs --no-pager").stdout
                raise Failed(f"boot did not settle within {BOOT_TIMEOUT}s ({state}); jobs:\n{jobs}")
            time.sleep(1)

    def show(self, unit: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} -p ActiveState,Result,ExecMainStatus,NRestarts,"
                      "ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic").stdout
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)

    def journal(self, unit: str) -> str:
        return self.sh(f"journalctl -b --no-pager -o cat -u {unit}").stdout

    def report(self) -> dict:
        r = self.sh(f"{self.py} {HERE / 'fixture.py'} report")
        if r.returncode != 0:
            raise Failed(f"fixture report failed: {r.stderr}")
        return json.loads(r.stdout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)  # a second SIGTERM: immediate
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        log(f"container stopped (nspawn exit {self.proc.returncode})")
        self.proc = None
        self.pid1 = None


def render_units(work: Path, py: Path, binary: Path) -> None:
    etc_systemd = work / "etc-systemd"
    wants = etc_systemd / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for src in (HERE / "units").glob("*.service"):
        text = src.read_text().replace("@REPO@", str(REPO)).replace("@PY@", str(py))
        (etc_systemd / src.name).write_text(text)
        if src.name not in ("docker.service", "ecs.service", "amazon-cloudwatch-agent.service"):
            # (ecs-bootstrap enables those)
            (wants / src.name).symlink_to(f"../{src.name}")
    # The container has only lo: wait-online would hold network-online.target for 2 minutes.
    # On an instance the network is up; here "online" is the loopback the doubles are on.
    (etc_systemd / "systemd-networkd-wait-online.service").symlink_to("/dev/null")
    # The real unit, as a package installs it (here in /etc: /usr is read-only), enabled.
    shutil.copy(REPO / "systemd" / "ecs-bootstrap.service", etc_systemd / "ecs-bootstrap.service")
    (wants / "ecs-bootstrap.service").symlink_to("../ecs-bootstrap.service")

    (work / "usr" / "bin").mkdir(parents=True)
    shutil.copy(binary, work / "usr" / "bin" / "ecs-bootstrap")

    env = work / "etc-ecs-bootstrap"
    env.mkdir()
    (env / "env").write_text(
        "# test: the SDK talks to moto on the container's loopback; IMDS is the default address\n"
        "AWS_ENDPOINT_URL=http://127.0.0.1:5000\n"
        "AWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=testing\n"
        "AWS_CONFIG_FILE=/dev/null\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\n"
        "# zero-config: no --stack/--resource/--signal-resource\n"
        "ECS_BOOTSTRAP_ARGS=\n")
    (work / "etc-ecs").mkdir()
    state = work / "state"
    state.mkdir()
    state.chmod(0o700)
    (work / "out").mkdir()


def cleanup_host(name: str, cgroups_before: set[Path]) -> None:
    for p in (Path("/run/systemd/nspawn/propagate") / name, Path("/run/systemd/nspawn/unix-export") / name):
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
    # cgroups nspawn made for the container (payload/supervisor, or ones named after it)
    for root in CGROUP_ROOTS:
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if d in cgroups_before:
                continue
            try:
                d.rmdir()
            except OSError:
                pass


def cgroup_dirs() -> set[Path]:
    out: set[Path] = set()
    for root in CGROUP_ROOTS:
        if root.is_dir():
            out.update(p for p in root.rglob("*") if p.is_dir())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("ECS_BOOTSTRAP_BIN", str(REPO / "target/debug/ecs-bootstrap")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    binary = Path(a.bin)
    if not binary.is_absolute():
        binary = REPO / binary
    try:
        py = preflight(binary)
    except Skip as e:
        print(f"nspawn test: SKIPPED: {e}", flush=True)
        return SKIP

    name = f"ecsbs-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ecs-bootstrap-nspawn-"))
    log(f"work dir {work}, binary {binary}")
    cgroups_before = cgroup_dirs()
    render_units(work, py, binary)
    # The interpreter of the venv lives outside /usr (pyenv): make it visible at the same path.
    base = Path(subprocess.run([str(py), "-c", "import sys; print(sys.base_prefix)"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # CA certificates, as on any AMI (the SDK's TLS setup wants native roots even for http).
    binds = [f"--bind-ro={REPO}", "--bind-ro=/etc/ssl/certs"]
    if not str(base).startswith("/usr"):
        binds.append(f"--bind-ro={base}")
    binds += [f"--bind={work / 'state'}:/var/lib/ecs-bootstrap",
              f"--bind={work / 'etc-systemd'}:/etc/systemd/system",
              f"--bind={work / 'etc-ecs'}:/etc/ecs",
              f"--bind={work / 'etc-ecs-bootstrap'}:/etc/ecs-bootstrap",
              f"--bind={work / 'out'}:/var/tmp/nspawn-test"]
    c = Container(name, work, py, binds)
    rc = 1
    try:
        # ---------------------------------------------------------------- boot 1
        c.boot(1)
        started = time.monotonic()
        state = c.wait_settled()
        log(f"boot 1 settled ({state}) after {time.monotonic() - started:.1f}s")
        if not (work / "out" / "identity.json").exists():
            raise Failed("the fixture did not create the stack:\n"
                         + c.journal("nspawn-fixture.service") + c.journal("nspawn-moto.service"))
        ident = json.loads((work / "out" / "identity.json").read_text())
        log(f"stack {ident['stack']}, instance {ident['instance_id']}, cluster {ident['cluster']}")

        unit = c.show("ecs-bootstrap.service")
        journal = c.journal("ecs-bootstrap.service")
        print("---- journal: ecs-bootstrap.service (boot 1) ----\n" + journal.rstrip(), flush=True)
        cloud_final = c.journal("cloud-final.service")
        userdata = c.journal("ecs-bootstrap-boot.service")
        print("---- journal: cloud-final.service (UserData, boot 1) ----\n"
              + cloud_final.rstrip(), flush=True)
        print("---- journal: ecs-bootstrap-boot.service (UserData's hand-off, boot 1) ----\n"
              + userdata.rstrip(), flush=True)
        report = c.report()
        finals = [ln for ln in journal.splitlines() if ln.startswith("ecs-bootstrap: ")]
        check(unit.get("Result") == "success" and unit.get("ExecMainStatus") == "0"
              and unit.get("ActiveState") == "active",
              "boot 1: ecs-bootstrap.service succeeded", json.dumps(unit))
        check(len(finals) == 1 and finals[0].startswith("ecs-bootstrap: SUCCESS")
              and ident["cluster"] in finals[0], "boot 1: the unit ran once and said SUCCESS",
              journal)
        check("discovered" in journal and "instance metadata tags" in journal,
              "boot 1: zero-config discovery from IMDS tags", journal)
        for u in ("docker.service", "ecs.service"):
            s = c.show(u)
            check(s.get("ActiveState") == "active", f"boot 1: {u} was started and is active", json.dumps(s))
        sigs = [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in report["signals"]]
        check(sigs == [("SUCCESS", ident["signal_resource"], ident["instance_id"])],
              "boot 1: exactly one SignalResource SUCCESS for the group from this instance",
              json.dumps(report["signals"]))
        check("handed off" in cloud_final,
              "boot 1: the UserData call handed itself off to a transient unit", cloud_final)
        check("ecs-bootstrap: SKIPPED" in userdata,
              "boot 1: the handed-off UserData run exited 0 without doing the work", userdata)
        cf = c.show("cloud-final.service")
        check(cf.get("Result") == "success", "boot 1: cloud-final (UserData) finished", json.dumps(cf))
        c.stop()
        console = (work / "console-1.log").read_text(errors="replace")
        check("ecs-bootstrap: SUCCESS" in console, "boot 1: the result reached the console")
        st = json.loads((work / "state" / "state.json").read_text())
        check(st["status"] == "SUCCESS" and st["signal_delivered"] and st["instance_id"] == ident["instance_id"],
              "boot 1: state.json records the delivered SUCCESS", json.dumps(st))
        check(((work / "state").stat().st_mode & 0o777) == 0o700, "state dir is 0700")

        # ---------------------------------------------------------------- boot 2
        c.boot(2)
        started = time.monotonic()
        state = c.wait_settled()
        log(f"boot 2 settled ({state}) after {time.monotonic() - started:.1f}s")
        unit = c.show("ecs-bootstrap.service")
        journal = c.journal("ecs-bootstrap.service")
        print("---- journal: ecs-bootstrap.service (boot 2) ----\n" + journal.rstrip(), flush=True)
        report = c.report()
        finals = [ln for ln in journal.splitlines() if ln.startswith("ecs-bootstrap: ")]
        check(unit.get("Result") == "success" and unit.get("ExecMainStatus") == "0",
              "boot 2: ecs-bootstrap.service exited 0", json.dumps(unit))
        check(len(finals) == 1 and finals[0].startswith("ecs-bootstrap: SKIPPED"),
              "boot 2: the unit did not run again (SKIPPED)", journal)
        aws_calls = [r for r in report["requests"]
                     if r["action"] in ("DescribeStackResource", "DescribeStackResources",
                                        "SignalResource", "DescribeAutoScalingInstances",
                                        "DescribeContainerInstances")]
        check(aws_calls == [] and report["signals"] == [],
              "boot 2: no stack read, no signal", json.dumps(report))
        c.stop()
        log("PASSED")
        rc = 0
    except Failed as e:
        log(f"FAILED: {e}")
        if c.pid1 is not None:
            for u in ("ecs-bootstrap.service", "ecs.service", "cloud-final.service",
                      "nspawn-fixture.service", "nspawn-imds.service", "nspawn-moto.service"):
                print(f"---- {u} ----\n{json.dumps(c.show(u))}\n{c.journal(u)[-3000:]}", flush=True)
    finally:
        c.stop()
        cleanup_host(name, cgroups_before)
        if a.keep or rc != 0:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
