"""`ecs-bootstrap init` (cfn-init's command line) against moto, and the dry-run plan of the Init
sections it adds (packages, groups, users, services)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from harness.forward_proxy import RecordingProxy
from harness.instance import bootstrap_bin


def run_init(instance, *args, env_drop=(), extra_env=None, timeout=60):
    env = instance.env()
    for k in env_drop:
        env.pop(k, None)
    env.update(extra_env or {})
    return subprocess.run([str(bootstrap_bin()), "init", "--root", str(instance.root), *args],
                          env=env, cwd=str(instance.workdir), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_init_from_stack_runs_only_init(moto, example_stack, instance):
    s = example_stack
    r = run_init(instance, "-s", s.name, "-r", s.launch_resource, "--region", s.region,
                 "-u", moto.url, env_drop=["AWS_ENDPOINT_URL"])
    assert r.returncode == 0, r.stderr
    motd = instance.path("/etc/ecs-bootstrap/motd").read_text()
    assert motd.startswith(f"{s.name}: ECS container instance of cluster {s.cluster}"), motd
    assert [a[0] for a in instance.sandboxed_commands()] == ["mkdir", "chown"]
    # Only the Init block: no ecs.config, no services, no signal.
    assert not instance.path("/etc/ecs/ecs.config").exists()
    assert instance.calls() == []
    assert moto.signals(s.name) == []
    assert any(q["params"].get("StackName") == s.name for q in moto.requests("DescribeStackResource"))


def test_init_unknown_stack_fails_with_reason(moto, example_stack, instance):
    r = run_init(instance, "--stack", "no-such-stack", "--resource", "X", "--url", moto.url,
                 env_drop=["AWS_ENDPOINT_URL"])
    assert r.returncode == 7, r.stderr
    assert "FAILURE (init) at stack metadata" in r.stderr and "no-such-stack" in r.stderr, r.stderr


def test_init_needs_a_stack_or_a_file(instance):
    r = run_init(instance)
    assert r.returncode == 2, r.stderr
    assert "--stack and --resource, or a metadata file" in r.stderr
    r = run_init(instance, "-s", "x", "-r", "y", "meta.json")
    assert r.returncode == 2 and "cannot be used with" in r.stderr, r.stderr


def test_init_credentials_and_proxy_flags(moto, example_stack, instance):
    s = example_stack
    proxy = RecordingProxy()
    try:
        r = run_init(instance, "-s", s.name, "-r", s.launch_resource, "-u", moto.url,
                     "--access-key", "AKIDINITFLAGTEST", "--secret-key", "SuperSecretValue123",
                     "--http-proxy", proxy.url, "-v", "-v",
                     env_drop=["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
    finally:
        proxy.shutdown()
    assert r.returncode == 0, r.stderr
    assert proxy.seen, "the CloudFormation request did not go through --http-proxy"
    req = proxy.seen[0]
    assert req["target"].startswith(moto.url), req
    assert "Credential=AKIDINITFLAGTEST/" in req["headers"].get("authorization", ""), req
    assert "SuperSecretValue123" not in r.stderr + r.stdout


def test_dry_run_shows_the_new_sections(instance, tmp_path):
    template = tmp_path / "t.yml"
    template.write_text("""
Resources:
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Metadata:
      ecs-bootstrap:
        Cluster: c1
      AWS::CloudFormation::Authentication:
        Repo: {type: basic, username: u, password: repo-pa55word, uris: ["https://repo.example.com/private/"]}
      AWS::CloudFormation::Init:
        config:
          packages:
            yum: {jq: [], httpd: "2.4"}
            rpm:
              epel: "http://example.com/epel.rpm"
              internal: "https://repo.example.com/private/internal-1.0.rpm"
              tools: "s3://artifacts/tools.rpm"
          groups: {web: {gid: "45"}}
          users: {www: {groups: [web], uid: 50, homeDir: /srv/www}}
          files:
            /etc/httpd/conf/httpd.conf: {content: "Listen 80\\n"}
          services:
            sysvinit:
              httpd: {enabled: true, ensureRunning: true, files: [/etc/httpd/conf/httpd.conf]}
    Properties: {ImageId: ami-1, InstanceType: t3.micro}
""")
    r = instance.run_bootstrap("--dry-run", "--template", str(template), "--resource", "LC",
                               "--signal-resource", "ASG", defaults=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "repo-pa55word" not in out + r.stderr
    for line in [
        "- packages (rpm): epel from http://example.com/epel.rpm, internal from "
        "https://repo.example.com/private/internal-1.0.rpm (downloaded with authentication Repo "
        "first), tools from s3://artifacts/tools.rpm (downloaded with the instance's credentials "
        "first)",
        "- packages (yum): jq, httpd-2.4 (those not installed, with `yum -y install`)",
        "- group web gid 45",
        "- user www uid 50 groups web home /srv/www",
        "- sysvinit service httpd: enable, ensure running; restarted if this config changes file /etc/httpd/conf/httpd.conf",
    ]:
        assert line in out, out
    # Application order: packages, groups, users before files; services last.
    assert out.index("packages (rpm)") < out.index("group web") < out.index("user www") \
        < out.index("file /etc/httpd") < out.index("sysvinit service")
    r = instance.run_bootstrap("--dry-run", "--template", str(template), "--resource", "LC",
                               "--signal-resource", "ASG", "--output", "json", defaults=False)
    config = json.loads(r.stdout)["init"]["configs"][0]
    assert config["packages"][1] == {"manager": "yum", "packages": [{"name": "jq"}, {"name": "httpd", "version": "2.4"}]}
    assert config["users"][0] == {"name": "www", "uid": 50, "groups": ["web"], "home_dir": "/srv/www"}
    assert config["services"][0]["triggers"] == {"files": ["/etc/httpd/conf/httpd.conf"]}


def test_wait_forever_stops_and_resumes_after_reboot(tmp_path):
    """waitAfterCompletion: forever: the run waits (for the reboot) after that command; the next
    run of the same metadata goes on with the next command; other metadata starts over."""
    from test_conformance import FAKE, binary

    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    root.mkdir()
    bin_dir.mkdir()
    (bin_dir / "record").symlink_to(FAKE)
    (tmp_path / "world.json").write_text("{}")
    log = tmp_path / "calls.jsonl"
    init = {"configSets": {"default": ["a", "b"]},
            "a": {"commands": {"1_first": {"command": "record first"},
                               "2_reboot": {"command": "record reboot", "waitAfterCompletion": "forever"},
                               "3_after": {"command": "record after"}}},
            "b": {"commands": {"1": {"command": "record b"}}}}
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"AWS::CloudFormation::Init": init}))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "AWS_EC2_METADATA_DISABLED": "true"}
    marker = root / "var/lib/ecs-bootstrap/init-resume.json"
    argv = [binary(), "init", "--root", str(root), str(meta)]

    def calls():
        return [json.loads(x)["argv"][1] for x in log.read_text().splitlines()] if log.exists() else []

    def run_until_waiting(new_calls):
        """Run until `new_calls` more commands ran, then check it is still waiting; kill it."""
        want = len(calls()) + new_calls
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(calls()) < want and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            assert p.poll() is None, f"exited {p.returncode} instead of waiting: {p.stderr.read()}"
        finally:
            p.kill()
            p.wait()

    run_until_waiting(2)
    assert calls() == ["first", "reboot"]
    assert json.loads(marker.read_text())["command"] == "2_reboot"
    assert stat_mode(marker) == 0o600
    assert json.loads((root / "var/lib/ecs-bootstrap/init.json").read_text())["status"] == "WAITING_FOR_REBOOT"

    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert calls() == ["first", "reboot", "after", "b"]
    assert "resuming Init after the reboot" in r.stderr
    assert not marker.exists()

    # A marker left by other metadata does not skip anything.
    run_until_waiting(2)
    assert calls()[-2:] == ["first", "reboot"]
    init["a"]["commands"]["0_new"] = {"command": "record new"}
    meta.write_text(json.dumps({"AWS::CloudFormation::Init": init}))
    run_until_waiting(3)
    assert calls()[-3:] == ["new", "first", "reboot"]


def stat_mode(p):
    return os.stat(p).st_mode & 0o7777


def test_init_role_credentials_come_from_imds(moto, example_stack, instance):
    s = example_stack
    instance.imds.identity.iam_role = "init-role"
    proxy = RecordingProxy()
    try:
        r = run_init(instance, "-s", s.name, "-r", s.launch_resource, "-u", moto.url,
                     "--role", "init-role", "--http-proxy", proxy.url,
                     env_drop=["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                               "AWS_EC2_METADATA_DISABLED"])
    finally:
        proxy.shutdown()
    assert r.returncode == 0, r.stderr
    paths = [q.path for q in instance.imds.requests("GET")]
    assert "/latest/meta-data/iam/security-credentials/init-role" in paths, paths
    # The role is the one named, not discovered (the SDK's default chain would list them first).
    assert "/latest/meta-data/iam/security-credentials/" not in paths, paths
    auth = proxy.seen[0]["headers"].get("authorization", "")
    assert "Credential=ASIAIMDSROLETEST/" in auth, auth
    assert proxy.seen[0]["headers"].get("x-amz-security-token") == "imds-role-token"


def test_init_https_proxy_tunnels_to_an_https_endpoint(instance):
    proxy = RecordingProxy()
    try:
        r = run_init(instance, "-s", "s", "-r", "r", "-u", "https://cloudformation.invalid.example:8443",
                     "--https-proxy", proxy.url, "--http-proxy", "http://127.0.0.1:9",
                     env_drop=["AWS_ENDPOINT_URL"], timeout=180)
    finally:
        proxy.shutdown()
    # The tunnel was refused, so the call fails; what matters is that it was asked of the proxy.
    assert r.returncode == 7, r.stderr
    assert proxy.seen and proxy.seen[0]["method"] == "CONNECT", proxy.seen
    assert proxy.seen[0]["target"] == "cloudformation.invalid.example:8443", proxy.seen
