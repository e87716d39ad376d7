#!/usr/bin/env python3
"""ecs-bootstrap under a real systemd (PID 1 in a systemd-nspawn container): two scenarios.

The container boots the host's /usr with a volatile (tmpfs) root and a private network: only
its own loopback, where this test's IMDS double (169.254.169.254:80) and moto (127.0.0.1:5000)
run as units. Installed into it: the binary as /usr/bin/ecs-bootstrap (read-only overlay on
/usr), the real systemd/ecs-bootstrap.service and the real ecs.service.d drop-in, an
/etc/ecs-bootstrap/env pointing the SDK at moto and giving no stack flags (zero-config), fake
docker/ecs units ordered like the real ones and enabled as on an ECS-optimized AMI (so ecs.service
starts by itself as soon as its ordering allows), and a fake cloud-final.service running
examples/userdata/userdata.sh. The stack's Init takes a few seconds, so an agent allowed to start
before ecs.config is written would register into the wrong cluster: the test would see it.

Scenario "unit" (ecs-bootstrap.service enabled), boot 1 asserts: the unit ran once and
succeeded; the UserData call found it working and said SKIPPED; ecs.service started only after
the unit said READY=1 (configured), once, with the stack's cluster; exactly one SignalResource
SUCCESS; the boot finished (no deadlock between the unit, cloud-final and ecs.service); the result
reached the console. Boot 2 (same /var/lib/ecs-bootstrap, /etc/ecs, /etc/systemd/system): the
unit said SKIPPED and made no AWS call; no new signal.

Also in scenario "unit", boot 1: the real ecs-bootstrap-hup.service, enabled as the packages
enable it (ECS_BOOTSTRAP_HUP=1 in /etc/ecs-bootstrap/env) and polling every HUP_INTERVAL seconds
(ECS_BOOTSTRAP_HUP_INTERVAL_SECONDS), is active in zero-config mode (READY=1 reached), records the
boot's launch digests in /var/lib/ecs-bootstrap/hup/state.json within a few intervals without
applying anything (the agent still started once), and `systemctl stop` ends it cleanly. It is
masked for boot 2, whose check is that no AWS call is made.

Scenario "userdata" (the unit disabled; UserData alone): the UserData call configured the
instance inside cloud-final and handed off to ecs-bootstrap-boot.service, which signalled SUCCESS;
the agent started once, after cloud-final, with the stack's cluster; handoff.json consumed.

Usage: nspawn_test.py [--bin PATH] [--keep]   (root; needs systemd-nspawn and the repo's .venv)
Exit 0 = passed, 1 = failed, 77 = skipped (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
# ecs-bootstrap-hup.service's poll interval through its test-only knob (docs/hup.md): the first
# poll comes at a random point of the first interval, the next ones every interval +- 10 %.
HUP_INTERVAL = 3
HUP_UNIT = "ecs-bootstrap-hup.service"
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
                    name = next((ln.split()[1] for ln in st.splitlines() if ln.startswith("Name:")), "")
                    # nspawn's short-lived helper children are its children too: only the one
                    # that has become systemd is the container's PID 1.
                    if ppid == str(self.proc.pid) and name == "systemd":
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

    def boot_and_settle(self, n: int) -> None:
        self.boot(n)
        started = time.monotonic()
        state = self.wait_settled()
        log(f"boot {n} settled ({state}) after {time.monotonic() - started:.1f}s")

    def wait_final_line(self, unit: str) -> str:
        """The unit's journal once ecs-bootstrap printed its final line: with Type=notify the
        boot settles at READY=1 (configured), before the join and the signal."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            journal = self.journal(unit)
            if any(ln.startswith("ecs-bootstrap: ") for ln in journal.splitlines()):
                return journal
            if time.monotonic() > deadline:
                raise Failed(f"{unit} printed no final line within {BOOT_TIMEOUT}s\n{journal}")
            time.sleep(0.5)

    def show(self, unit: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} -p ActiveState,Result,ExecMainStatus,NRestarts,"
                      "ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic,SubState,WantedBy,RequiredBy,TriggeredBy,UnitFileState").stdout
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


def render_units(work: Path, py: Path, binary: Path, unit_enabled: bool) -> None:
    """unit_enabled: ecs-bootstrap.service and ecs-bootstrap-hup.service enabled (scenario
    "unit"); else neither is installed enabled (scenario "userdata")."""
    etc_systemd = work / "etc-systemd"
    wants = etc_systemd / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for src in (HERE / "units").glob("*.service"):
        text = src.read_text().replace("@REPO@", str(REPO)).replace("@PY@", str(py))
        (etc_systemd / src.name).write_text(text)
        if src.name != "amazon-cloudwatch-agent.service":
            # docker and ecs too: enabled on the ECS-optimized AMIs.
            (wants / src.name).symlink_to(f"../{src.name}")
    # The container has only lo: wait-online would hold network-online.target for 2 minutes.
    # On an instance the network is up; here "online" is the loopback the doubles are on.
    (etc_systemd / "systemd-networkd-wait-online.service").symlink_to("/dev/null")
    # The real unit and drop-in, as a package installs them (here in /etc: /usr is read-only).
    shutil.copy(REPO / "systemd" / "ecs-bootstrap.service", etc_systemd / "ecs-bootstrap.service")
    shutil.copytree(REPO / "systemd" / "ecs.service.d", etc_systemd / "ecs.service.d")
    if unit_enabled:
        (wants / "ecs-bootstrap.service").symlink_to("../ecs-bootstrap.service")
        # The packages' postinst enables it when the env file says ECS_BOOTSTRAP_HUP=1 (below).
        # (With its [Install] section, the presets of the container's first boot would too.)
        shutil.copy(REPO / "systemd" / HUP_UNIT, etc_systemd / HUP_UNIT)
        (wants / HUP_UNIT).symlink_to(f"../{HUP_UNIT}")
    else:
        # Installed, not enabled. Without its [Install] section: on the container's first boot
        # (empty /etc) systemd applies the presets, which would enable it.
        unit = etc_systemd / "ecs-bootstrap.service"
        unit.write_text(unit.read_text().split("[Install]")[0])

    (work / "usr" / "bin").mkdir(parents=True)
    shutil.copy(binary, work / "usr" / "bin" / "ecs-bootstrap")

    env = work / "etc-ecs-bootstrap"
    env.mkdir()
    (env / "env").write_text(
        "# test: the SDK talks to moto on the container's loopback; IMDS is the default address\n"
        "AWS_ENDPOINT_URL=http://127.0.0.1:5000\n"
        "# credentials: the instance role, from the IMDS double (as on an instance)\n"
        "AWS_CONFIG_FILE=/dev/null\nAWS_SHARED_CREDENTIALS_FILE=/dev/null\n"
        "# zero-config: no --stack/--resource/--signal-resource\n"
        "ECS_BOOTSTRAP_ARGS=\n"
        + ("# ecs-bootstrap-hup.service: opted in (the packages enable it), test-only interval\n"
           f"ECS_BOOTSTRAP_HUP=1\nECS_BOOTSTRAP_HUP_INTERVAL_SECONDS={HUP_INTERVAL}\n"
           if unit_enabled else ""))
    (work / "etc-ecs").mkdir()
    state = work / "state"
    state.mkdir()
    state.chmod(0o700)
    (work / "out").mkdir()


def cleanup_host(name: str, cgroups_before: set[Path]) -> None:
    for p in (Path("/run/systemd/nspawn/propagate") / name, Path("/run/systemd/nspawn/unix-export") / name):
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
    # cgroups nspawn made for the container (payload/supervisor, or ones named after it). The
    # kernel frees them a moment after the last process exits: retry for a few seconds.
    for _ in range(30):
        left = [d for d in cgroup_dirs() if d not in cgroups_before]
        for d in sorted(left, key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        if not [d for d in cgroup_dirs() if d not in cgroups_before]:
            return
        time.sleep(0.2)
    log("warning: cgroups left behind: "
        + ", ".join(str(d) for d in cgroup_dirs() if d not in cgroups_before))


def cgroup_dirs() -> set[Path]:
    out: set[Path] = set()
    for root in CGROUP_ROOTS:
        if root.is_dir():
            out.update(p for p in root.rglob("*") if p.is_dir())
    return out


def monotonic(props: dict[str, str], key: str) -> int:
    return int(props.get(key) or 0)


def agent_starts(c: Container) -> list[str]:
    """The fake agent's start lines: one per start, naming the cluster it read."""
    return [ln for ln in c.journal("ecs.service").splitlines()
            if "fake-ecs-agent: mode=" in ln and "cluster=" in ln]


def check_agent_started_once(c: Container, ident: dict, label: str) -> None:
    starts = agent_starts(c)
    ecs = c.show("ecs.service")
    check(len(starts) == 1 and f"cluster='{ident['cluster']}'" in starts[0]
          and ecs.get("NRestarts") == "0",
          f"{label}: the agent started once, on ecs.config with the stack's cluster",
          json.dumps(ecs) + "\n" + c.journal("ecs.service"))


def identity(work: Path, c: Container) -> dict:
    if not (work / "out" / "identity.json").exists():
        raise Failed("the fixture did not create the stack:\n"
                     + c.journal("nspawn-fixture.service") + c.journal("nspawn-moto.service"))
    ident = json.loads((work / "out" / "identity.json").read_text())
    log(f"stack {ident['stack']}, instance {ident['instance_id']}, cluster {ident['cluster']}")
    return ident


def check_hup(c: Container, work: Path, ident: dict) -> None:
    """Boot 1 of scenario "unit": ecs-bootstrap-hup.service up in zero-config mode, its polls
    record the boot's digests and apply nothing, and a stop is clean."""
    hup = c.show(f"{HUP_UNIT} -p StatusText")
    journal = c.journal(HUP_UNIT)
    # Type=notify: active only once READY=1 came, with the STATUS= of daemon mode.
    check(hup.get("ActiveState") == "active" and hup.get("SubState") == "running"
          and hup.get("StatusText") == "watching the stack" and hup.get("NRestarts") == "0",
          "boot 1: ecs-bootstrap-hup.service is active and said READY=1", json.dumps(hup) + "\n" + journal)
    check("launch resource from the boot run" in journal
          and "zero-config: watching the launch resource" in journal
          and f"stack={ident['stack']}" in journal,
          "boot 1: hup started in zero-config mode on the boot run's launch record", journal)
    # The keys and values of src/hup/launch.rs (`key`, `stored`): the digests launch.json holds.
    launch = json.loads((work / "state" / "launch.json").read_text())
    want = {f"ecs-bootstrap|{block}@{launch['stack']}/{launch['resource']}": launch[field] or "absent"
            for block, field in (("AWS::CloudFormation::Init", "init"), ("ecs-bootstrap", "settings"))}
    state_file = work / "state" / "hup" / "state.json"
    deadline = time.monotonic() + 3 * HUP_INTERVAL + 10
    state: dict = {}
    while time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("metadata") == want:
            break
        time.sleep(0.5)
    journal = c.journal(HUP_UNIT)
    check(state.get("metadata") == want and not state.get("failures"),
          f"boot 1: hup polled within a few {HUP_INTERVAL} s intervals and recorded the boot's digests",
          f"want {json.dumps(want)}\nstate.json {json.dumps(state)}\n{journal}")
    # Level tokens of the log lines, not substrings: the SDK's DEBUG lines may say "error".
    bad = [ln for ln in journal.splitlines()
           if re.match(r"\S+Z\s+(WARN|ERROR)\s", ln)
           or any(s in ln for s in ("Metadata changed", "first sighting", "not applied"))]
    check(not bad, "boot 1: hup applied nothing (the Metadata is what the boot applied)",
          "\n".join(bad))
    started = time.monotonic()
    r = c.sh(f"systemctl stop {HUP_UNIT}", timeout=120)
    took = time.monotonic() - started
    hup = c.show(HUP_UNIT)
    journal = c.journal(HUP_UNIT)
    shown = [ln for ln in journal.splitlines() if not re.match(r"\S+Z\s+(DEBUG|TRACE)\s", ln)]
    print(f"---- journal: {HUP_UNIT} (boot 1, no DEBUG) ----\n" + "\n".join(shown), flush=True)
    # Result=success: it exited 0 on SIGTERM, before TimeoutStopSec (90 s) would have killed it.
    check(r.returncode == 0 and took < 90 and hup.get("ActiveState") == "inactive"
          and hup.get("Result") == "success"
          and any(re.match(r"\S+Z\s+INFO stopped$", ln) for ln in shown),
          f"boot 1: systemctl stop {HUP_UNIT} was clean ({took:.1f}s)",
          f"rc {r.returncode} {r.stderr}\n{json.dumps(hup)}\n{journal}")


def scenario_unit(c: Container, work: Path) -> None:
    # ---------------------------------------------------------------- boot 1
    c.boot_and_settle(1)
    ident = identity(work, c)
    journal = c.wait_final_line("ecs-bootstrap.service")
    unit = c.show("ecs-bootstrap.service")
    print("---- journal: ecs-bootstrap.service (boot 1) ----\n" + journal.rstrip(), flush=True)
    cloud_final = c.journal("cloud-final.service")
    print("---- journal: cloud-final.service (UserData, boot 1) ----\n"
          + cloud_final.rstrip(), flush=True)
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
    # Before the ecs.service checks: they then also say that hup's polls restarted nothing.
    check_hup(c, work, ident)
    for u in ("docker.service", "ecs.service"):
        s = c.show(u)
        check(s.get("ActiveState") == "active", f"boot 1: {u} was started and is active", json.dumps(s))
    # Type=notify: the unit became active at READY=1 (configured), before its process ended;
    # ecs.service (enabled, ordered after the unit by the drop-in) started only after that.
    ecs = c.show("ecs.service")
    ready_at = monotonic(unit, "ActiveEnterTimestampMonotonic")
    ecs_at = monotonic(ecs, "InactiveExitTimestampMonotonic")
    check(0 < ready_at <= ecs_at,
          "boot 1: ecs.service started after ecs-bootstrap.service said READY=1 (configured)",
          f"ready at {ready_at}, ecs started at {ecs_at}")
    check_agent_started_once(c, ident, "boot 1")
    sigs = [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in report["signals"]]
    check(sigs == [("SUCCESS", ident["signal_resource"], ident["instance_id"])],
          "boot 1: exactly one SignalResource SUCCESS for the group from this instance",
          json.dumps(report["signals"]))
    check("ecs-bootstrap: SKIPPED" in cloud_final and "run.lock" in cloud_final,
          "boot 1: the UserData call found the unit at work and said SKIPPED", cloud_final)
    cf = c.show("cloud-final.service")
    check(cf.get("Result") == "success", "boot 1: cloud-final (UserData) finished", json.dumps(cf))
    c.stop()
    # Boot 2 checks that no AWS call is made: hup's polls would make some.
    (work / "etc-systemd" / "multi-user.target.wants" / HUP_UNIT).unlink()
    (work / "etc-systemd" / HUP_UNIT).unlink()
    (work / "etc-systemd" / HUP_UNIT).symlink_to("/dev/null")
    console = (work / "console-1.log").read_text(errors="replace")
    check("ecs-bootstrap: SUCCESS" in console, "boot 1: the result reached the console")
    st = json.loads((work / "state" / "state.json").read_text())
    check(st["status"] == "SUCCESS" and st["signal_delivered"] and st["instance_id"] == ident["instance_id"],
          "boot 1: state.json records the delivered SUCCESS", json.dumps(st))
    check(((work / "state").stat().st_mode & 0o777) == 0o700, "state dir is 0700")

    # ---------------------------------------------------------------- boot 2
    c.boot_and_settle(2)
    journal = c.wait_final_line("ecs-bootstrap.service")
    unit = c.show("ecs-bootstrap.service")
    print("---- journal: ecs-bootstrap.service (boot 2) ----\n" + journal.rstrip(), flush=True)
    report = c.report()
    finals = [ln for ln in journal.splitlines() if ln.startswith("ecs-bootstrap: ")]
    check(unit.get("Result") == "success" and unit.get("ExecMainStatus") == "0"
          and unit.get("ActiveState") == "active",
          "boot 2: ecs-bootstrap.service exited 0 and is active (READY=1 sent on the skip path)",
          json.dumps(unit))
    check(len(finals) == 1 and finals[0].startswith("ecs-bootstrap: SKIPPED"),
          "boot 2: the unit did not run again (SKIPPED)", journal)
    aws_calls = [r for r in report["requests"]
                 if r["action"] in ("DescribeStackResource", "DescribeStackResources",
                                    "SignalResource", "DescribeAutoScalingInstances",
                                    "DescribeContainerInstances")]
    check(aws_calls == [] and report["signals"] == [],
          "boot 2: no stack read, no signal", json.dumps(report))
    c.stop()


def scenario_userdata(c: Container, work: Path) -> None:
    c.boot_and_settle(1)
    ident = identity(work, c)
    cloud_final = c.wait_final_line("cloud-final.service")
    check("ecs-bootstrap: CONFIGURED" in cloud_final and "handed off" in cloud_final,
          "userdata: UserData configured the instance and handed off", cloud_final)
    handed = c.wait_final_line("ecs-bootstrap-boot.service")
    print("---- journal: cloud-final.service (UserData) ----\n" + cloud_final.rstrip(), flush=True)
    print("---- journal: ecs-bootstrap-boot.service (the hand-off unit) ----\n" + handed.rstrip(),
          flush=True)
    report = c.report()
    check(c.show("ecs-bootstrap.service").get("ActiveState") == "inactive",
          "userdata: the boot unit is disabled and did not run")
    finals = [ln for ln in handed.splitlines() if ln.startswith("ecs-bootstrap: ")]
    check(len(finals) == 1 and finals[0].startswith("ecs-bootstrap: SUCCESS")
          and "resuming the boot sequence handed off" in handed,
          "userdata: ecs-bootstrap-boot.service resumed, joined and said SUCCESS", handed)
    cf, ecs = c.show("cloud-final.service"), c.show("ecs.service")
    check(cf.get("Result") == "success"
          and monotonic(cf, "ActiveEnterTimestampMonotonic")
          <= monotonic(ecs, "InactiveExitTimestampMonotonic"),
          "userdata: cloud-final finished, then ecs.service started", json.dumps([cf, ecs]))
    check_agent_started_once(c, ident, "userdata")
    sigs = [(s["Status"], s["LogicalResourceId"], s["UniqueId"]) for s in report["signals"]]
    check(sigs == [("SUCCESS", ident["signal_resource"], ident["instance_id"])],
          "userdata: exactly one SignalResource SUCCESS", json.dumps(report["signals"]))
    stack_reads = [r for r in report["requests"] if r["action"] == "DescribeStackResource"]
    check(len(stack_reads) == 1, "userdata: the stack was read once (the unit resumed from the hand-off)",
          json.dumps(report["requests"]))
    # The hand-off unit signs with the identity proof the UserData run read (issue 20): every
    # CloudFormation call of both processes is identity-signed, none SigV4.
    # (The fixture's own set-up calls, signed with the harness's "testing" key, excluded.)
    cfn = [r for r in report["requests"]
           if r["action"] in ("DescribeStackResource", "DescribeStackResources", "SignalResource")
           and r.get("access_key") != "testing"]
    check(cfn and all(r.get("auth") == "cfn_v1" for r in cfn),
          "userdata: every CloudFormation call was signed with the instance identity (CFN_V1)",
          json.dumps([(r["action"], r.get("auth")) for r in cfn]))
    c.stop()
    check(not (work / "state" / "handoff.json").exists(), "userdata: handoff.json was consumed")


def run_scenario(label: str, py: Path, binary: Path, unit_enabled: bool, body, keep: bool) -> bool:
    name = f"ecsbs-{os.getpid()}-{label}"
    work = Path(tempfile.mkdtemp(prefix=f"ecs-bootstrap-nspawn-{label}-"))
    log(f"==== scenario {label}: work dir {work}, binary {binary}")
    cgroups_before = cgroup_dirs()
    render_units(work, py, binary, unit_enabled)
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
    ok = False
    try:
        body(c, work)
        log(f"scenario {label}: PASSED")
        ok = True
    except Failed as e:
        log(f"scenario {label}: FAILED: {e}")
        if c.pid1 is not None:
            for u in ("ecs-bootstrap.service", "ecs-bootstrap-boot.service", HUP_UNIT, "ecs.service",
                      "cloud-final.service", "nspawn-fixture.service", "nspawn-imds.service",
                      "nspawn-moto.service"):
                print(f"---- {u} ----\n{json.dumps(c.show(u))}\n{c.journal(u)[-3000:]}", flush=True)
    finally:
        c.stop()
        cleanup_host(name, cgroups_before)
        if keep or not ok:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("ECS_BOOTSTRAP_BIN", str(REPO / "target/debug/ecs-bootstrap")))
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    a = ap.parse_args()
    binary = Path(a.bin)
    if not binary.is_absolute():
        binary = REPO / binary
    try:
        py = preflight(binary)
    except Skip as e:
        print(f"nspawn test: SKIPPED: {e}", flush=True)
        return SKIP
    results = [run_scenario("unit", py, binary, True, scenario_unit, a.keep),
               run_scenario("userdata", py, binary, False, scenario_userdata, a.keep)]
    if all(results):
        log("PASSED")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
