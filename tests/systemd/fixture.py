"""Inside the nspawn container: the AWS side of the world for the real-systemd test.

Subcommands (run by the units in units/, as the container's systemd starts them):

- ``setup OUT``: waits for the moto server (nspawn-moto.service) on 127.0.0.1:5000, puts
  169.254.169.254/32 on lo (the container has a private network: nothing leaves it), and on the
  first boot creates the launch-template example stack in moto (with an Init command that
  takes a few seconds), saves what IMDS must answer to
  OUT/identity.json and renders examples/userdata/userdata.sh to OUT/userdata.sh. On later boots it reuses that file (same instance, rebooted).
- ``imds OUT``: the IMDSv2 double on 169.254.169.254:80 answering as that instance (with its
  CloudFormation tags), so ecs-bootstrap and the fake agent use their default IMDS address.
  Tells systemd it is ready (Type=notify) once the socket is bound.
- ``report``: JSON on stdout: the signals and API requests moto received.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

MOTO = "http://127.0.0.1:5000"
IMDS_ADDR = "169.254.169.254"
SLOW_INIT_SECONDS = 4


def wait_moto(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(MOTO + "/_harness/signals", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("moto did not come up on 127.0.0.1:5000")
            time.sleep(0.2)


def setup(out: Path) -> None:
    wait_moto()
    subprocess.run(["ip", "addr", "replace", f"{IMDS_ADDR}/32", "dev", "lo"], check=True)
    ident = out / "identity.json"
    if ident.exists():
        print(f"reboot: reusing {ident}", flush=True)
        return
    from harness.aws import CREDS, MotoServer, create_network, create_stack, example_template

    moto = MotoServer.__new__(MotoServer)  # only .url, .creds and .client() are used
    moto.url = MOTO
    moto.creds = dict(CREDS)
    # A configuration that takes a few seconds (as real Init does: packages, downloads) makes
    # the race deterministic: an ecs.service allowed to start before ecs-bootstrap has written
    # ecs.config would start on a config without ECS_CLUSTER and join `default`.
    body = example_template("stack-launch-template.yml")
    anchor = "              command: chown -R 1000:1000 /data/public\n"
    assert anchor in body, "the launch-template example changed: update the slow-Init anchor"
    body = body.replace(anchor, anchor + "            07_slow_configuration:\n"
                        f"              command: sleep {SLOW_INIT_SECONDS}\n", 1)
    stack = create_stack(moto, create_network(moto), body)
    assert stack.metadata_tags_enabled, "the launch-template example must enable IMDS tags"
    data = {
        "stack": stack.name,
        "signal_resource": stack.signal_resource,
        "launch_resource": stack.launch_resource,
        "cluster": stack.cluster,
        "instance_id": stack.instance_id,
        "region": stack.region,
        "az": stack.availability_zone,
        "instance_type": stack.instance_type,
        "tags": stack.instance_tags,
    }
    out.mkdir(parents=True, exist_ok=True)
    # The shipped UserData snippet, as CloudFormation's Fn::Sub renders it; the fake
    # cloud-final.service runs it.
    script = (TESTS.parent / "examples" / "userdata" / "userdata.sh").read_text()
    script = script.replace("${AWS::StackName}", stack.name).replace("${AWS::Region}", stack.region)
    (out / "userdata.sh").write_text(script)
    ident.write_text(json.dumps(data, indent=1))
    print(f"created stack {stack.name}; instance {stack.instance_id}", flush=True)


def sd_notify(msg: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(msg.encode())


def imds(out: Path) -> None:
    from harness.imds import ImdsServer, InstanceIdentity

    d = json.loads((out / "identity.json").read_text())
    ident = InstanceIdentity(instance_id=d["instance_id"], region=d["region"],
                             availability_zone=d["az"], instance_type=d["instance_type"],
                             tags=d["tags"],
                             # The instance profile: every ecs-bootstrap run in the container
                             # (unit, UserData, hand-off unit) gets its credentials from IMDS.
                             iam_role="ecsInstanceRole")
    srv = ImdsServer(ident, host=IMDS_ADDR, port=80)
    print(f"IMDS double on {IMDS_ADDR}:80 as {d['instance_id']}", flush=True)
    sd_notify("READY=1")
    srv._httpd.serve_forever()


def report() -> None:
    def get(route: str):
        return json.loads(urllib.request.urlopen(MOTO + route, timeout=5).read())

    print(json.dumps({"signals": get("/_harness/signals"),
                      "requests": [{"action": r["action"], "service": r["service"],
                                    "auth": r.get("auth"), "access_key": r.get("access_key")}
                                   for r in get("/_harness/requests")]}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(Path(sys.argv[2]))
    elif cmd == "imds":
        imds(Path(sys.argv[2]))
    elif cmd == "report":
        report()
    else:
        raise SystemExit(f"unknown subcommand {cmd}")
