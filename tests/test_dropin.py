"""End-to-end: `ecs-bootstrap signal` (cfn-signal), `get-metadata` (cfn-get-metadata) and the
cfn-X program names (the binary symlinked as /opt/aws/bin/cfn-signal etc.)."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from harness.aws import wait_signals
from harness.forward_proxy import RecordingProxy
from harness.http_files import FileServer
from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")


@pytest.fixture
def aws_bin(tmp_path):
    """A directory like /opt/aws/bin: cfn-* names are symlinks to the binary."""
    d = tmp_path / "opt-aws-bin"
    d.mkdir()
    for name in ("cfn-init", "cfn-signal", "cfn-get-metadata", "cfn-hup"):
        (d / name).symlink_to(BIN.resolve())
    return d


def run(instance, argv: list[str], timeout: float = 60):
    return instance._run([str(a) for a in argv], timeout)


def test_signal_resource_success_failure_and_not_waiting(moto, instance, make_stack, aws_bin):
    from harness.aws import example_template

    stack = make_stack(example_template("stack.yml"))
    common = ["--stack", stack.name, "--resource", stack.signal_resource, "--region", stack.region]

    # As in UserData: cfn-signal -e $? ...; UniqueId is the instance id from IMDS.
    res = run(instance, [aws_bin / "cfn-signal", "-e", "0", *common])
    assert res.returncode == 0, str(res)
    sigs = wait_signals(moto, stack.name, 1)
    assert [(s["Status"], s["UniqueId"], s["LogicalResourceId"]) for s in sigs] == [
        ("SUCCESS", stack.instance_id, stack.signal_resource)]

    # The example's CreationPolicy wants one signal: the resource is now complete, and a
    # second signal is a warning with exit 0 (cfn-signal exits 1 here).
    res = run(instance, [BIN, "signal", "-e", "1", "-i", "other-id", *common])
    assert res.returncode == 0, str(res)
    assert "cannot be signaled" in res.stderr, res.stderr
    assert len(moto.signals(stack.name)) == 1


def test_signal_failure_from_exit_code_and_success_flag(moto, instance, make_stack):
    from harness.aws import example_template

    # Without --region the region comes from IMDS (the double answers the stack's region).
    for flags, want in ((["-e", "3", "--region", "us-east-1",
                          "--access-key", "AKIDCLI", "--secret-key", "cli-secret"], "FAILURE"),
                        (["-s", "false"], "FAILURE")):
        stack = make_stack(example_template("stack.yml"))
        res = run(instance, [BIN, "signal", *flags, "-i", "custom-id", "--stack", stack.name,
                             "--resource", stack.signal_resource])
        assert res.returncode == 0, str(res)
        assert [(s["Status"], s["UniqueId"]) for s in wait_signals(moto, stack.name, 1)] == [
            (want, "custom-id")]
    assert instance.imds.requests(path="/latest/meta-data/placement/region"), \
        "without --region the region must come from IMDS"


def test_signal_region_from_the_environment_before_imds(moto, instance, make_stack):
    """The one region rule (src/aws/region.rs): without --region, AWS_REGION and then
    AWS_DEFAULT_REGION win over the instance's region, as in the AWS SDKs and CLI; IMDS is not
    asked. The stack is in us-east-1 (IMDS's region): a signal sent to eu-west-1 finds none."""
    from harness.aws import example_template

    stack = make_stack(example_template("stack.yml"))
    asked = lambda: len(instance.imds.requests(path="/latest/meta-data/placement/region"))
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        before = asked()
        res = instance._run([str(BIN), "signal", "-e", "0", "-i", "custom-id", "--stack",
                             stack.name, "--resource", stack.signal_resource,
                             "--access-key", "AKIDCLI", "--secret-key", "cli-secret"],
                            60, extra_env={var: "eu-west-1"})
        assert res.returncode != 0, f"{var}: signalled the us-east-1 stack\n{res}"
        assert asked() == before, f"{var}: IMDS asked for the region"
    assert moto.signals(stack.name) == []


def test_signal_errors_are_clear(moto, instance):
    """Bad stack, missing target, and an unusable -f file (whose content is never shown)."""
    res = run(instance, [BIN, "signal", "-e", "0", "--stack", "no-such-stack",
                         "--resource", "Asg", "--region", "us-east-1"])
    assert res.returncode == 8, str(res)
    assert "no-such-stack" in res.stderr and "does not exist" in res.stderr, res.stderr
    res = run(instance, [BIN, "signal", "-e", "0"])
    assert res.returncode == 2 and "--stack and --resource" in res.stderr, str(res)
    bad = instance.home / "creds"
    bad.write_text("AWSAccessKeyId=AKIAONLY\nsecret-looking-line\n")
    res = run(instance, [BIN, "signal", "-e", "0", "-f", bad, "--stack", "s",
                         "--resource", "r", "--region", "us-east-1"])
    assert res.returncode == 2 and str(bad) in res.stderr, str(res)
    assert "secret-looking-line" not in res.stderr and "AKIAONLY" not in res.stderr


def test_wait_condition_handle_put(instance):
    web = FileServer().start()
    try:
        url = f"{web.url}/waitcondition/arn%3Aaws%3Acloudformation?X-Amz-Signature=abc"
        res = run(instance, [BIN, "signal", "-e", "0", "-r", "all good", "-d", "v1.2", url])
        assert res.returncode == 0, str(res)
        encoded = base64.b64encode(url.encode()).decode()
        res = run(instance, [BIN, "signal", "-e", "2", "-i", "web-1", encoded])
        assert res.returncode == 0, str(res)
        puts = [s for s in web.log if s.method == "PUT"]
        assert len(puts) == 2, web.log
        assert all(p.path == url[len(web.url):] for p in puts)
        # cfn-signal sends an empty Content-Type: the presigned URL was signed with it.
        assert all(p.headers.get("content-type", "") == "" for p in puts), [p.headers for p in puts]
        assert json.loads(puts[0].body) == {"Status": "SUCCESS", "Reason": "all good",
                                            "UniqueId": instance.imds.identity.instance_id,
                                            "Data": "v1.2"}
        second = json.loads(puts[1].body)
        assert second["Status"] == "FAILURE" and second["UniqueId"] == "web-1", second
        assert "2" in second["Reason"], second
    finally:
        web.stop()


def test_signal_resource_through_http_proxy_with_credentials(moto, instance, make_stack):
    """cfn-signal's --http-proxy: moto's http:// endpoint (AWS_ENDPOINT_URL) is reached through
    the proxy, which sees the absolute-URI SignalResource request and the proxy credentials;
    --https-proxy (a closed port) is for https:// endpoints only and is not used."""
    from harness.aws import example_template

    stack = make_stack(example_template("stack.yml"))
    proxy = RecordingProxy()
    host = proxy.url.removeprefix("http://")
    try:
        res = run(instance, [BIN, "signal", "-e", "0", "--stack", stack.name,
                             "--resource", stack.signal_resource, "--region", stack.region,
                             "--http-proxy", f"http://puser:Proxy-Pa55-word@{host}",
                             "--https-proxy", "http://127.0.0.1:9", "-v"])
    finally:
        proxy.shutdown()
    assert res.returncode == 0, str(res)
    assert [s["Status"] for s in wait_signals(moto, stack.name, 1)] == ["SUCCESS"]
    signals = [s for s in proxy.seen if b"Action=SignalResource" in s["body"]]
    assert len(signals) == 1, proxy.seen
    assert signals[0]["method"] == "POST" and signals[0]["target"].startswith(moto.url + "/"), signals
    assert signals[0]["headers"].get("proxy-authorization") == \
        "Basic " + base64.b64encode(b"puser:Proxy-Pa55-word").decode(), signals[0]["headers"]
    assert "Proxy-Pa55-word" not in res.stdout + res.stderr


def test_signal_https_proxy_is_asked_for_a_tunnel(instance):
    proxy = RecordingProxy()
    try:
        res = run(instance, [BIN, "signal", "-e", "0", "-i", "i-1", "--stack", "s",
                             "--resource", "r", "--region", "us-east-1",
                             "-u", "https://cloudformation.invalid.example:8443",
                             "--https-proxy", proxy.url, "--http-proxy", "http://127.0.0.1:9"],
                  timeout=180)
    finally:
        proxy.shutdown()
    # The tunnel was refused, so the signal fails; what matters is that the proxy was asked.
    assert res.returncode == 8, str(res)
    assert proxy.seen and {s["method"] for s in proxy.seen} == {"CONNECT"}, proxy.seen
    assert proxy.seen[0]["target"] == "cloudformation.invalid.example:8443", proxy.seen


def test_wait_condition_put_through_http_proxy(instance):
    web = FileServer().start()
    proxy = RecordingProxy()
    try:
        url = f"{web.url}/waitcondition/arn%3Aaws%3Acloudformation?X-Amz-Signature=abc"
        res = run(instance, [BIN, "signal", "-e", "0", "-i", "web-1", "--http-proxy", proxy.url, url])
        assert res.returncode == 0, str(res)
        # Without a proxy for its scheme, the PUT goes direct (the https one is a closed port).
        res2 = run(instance, [BIN, "signal", "-e", "0", "-i", "web-2",
                              "--https-proxy", "http://127.0.0.1:9", url])
        assert res2.returncode == 0, str(res2)
    finally:
        proxy.shutdown()
        web.stop()
    assert [(s["method"], s["target"]) for s in proxy.seen] == [("PUT", url)], proxy.seen
    assert json.loads(proxy.seen[0]["body"])["UniqueId"] == "web-1"
    puts = [json.loads(s.body)["UniqueId"] for s in web.log if s.method == "PUT"]
    assert puts == ["web-1", "web-2"], web.log


def test_bad_proxy_flag_is_a_usage_error_without_its_password(instance):
    for flag in ("--http-proxy", "--https-proxy"):
        res = run(instance, [BIN, "signal", "-e", "0", "-i", "x", "--stack", "s", "--resource",
                             "r", "--region", "us-east-1", flag, "ftp://u:Hidden-Pa55@proxy:21"])
        assert res.returncode == 2, str(res)
        assert flag in res.stderr and "Hidden-Pa55" not in res.stdout + res.stderr, res.stderr
    assert instance.imds.log == [], "a usage error must stop before IMDS"


def test_help_answers_without_imds_or_network(instance, aws_bin):
    for argv in ([aws_bin / "cfn-signal", "--help"], [BIN, "signal", "--help"],
                 [aws_bin / "cfn-get-metadata", "--help"]):
        res = run(instance, argv, timeout=30)
        assert res.returncode == 0 and "Usage:" in res.stdout, str(res)
    assert "--exit-code" in run(instance, [aws_bin / "cfn-signal", "--help"]).stdout
    assert instance.imds.log == []


def test_cfn_names_dispatch_generically(instance, aws_bin):
    # cfn-init is `ecs-bootstrap init`, whatever that answers (it is another module's command).
    a = run(instance, [aws_bin / "cfn-init", "--help"])
    b = run(instance, [BIN, "init", "--help"])
    if b.returncode == 0:
        assert a.returncode == 0 and a.stdout == b.stdout, f"{a}\n{b}"
    else:
        assert a.returncode == 2 and "init" in a.stderr, str(a)
    # cfn-hup is `ecs-bootstrap hup` (tests/test_hup.py); a name with no command is refused.
    a = run(instance, [aws_bin / "cfn-hup", "--help"])
    b = run(instance, [BIN, "hup", "--help"])
    assert a.returncode == 0 and a.stdout == b.stdout, f"{a}\n{b}"
    (aws_bin / "cfn-nope").symlink_to(BIN.resolve())
    res = run(instance, [aws_bin / "cfn-nope"])
    assert res.returncode == 2 and "cfn-nope" in res.stderr, str(res)


def test_get_metadata_whole_and_by_key(moto, instance, make_stack, aws_bin):
    from harness.aws import example_template

    body = example_template("stack.yml").replace(
        "      AWS::CloudFormation::Init:\n",
        "      AWS::CloudFormation::Authentication:\n"
        "        Web:\n          type: basic\n          username: u\n"
        "          password: top-secret-pw\n          uris: [\"https://example.com/\"]\n"
        "      AWS::CloudFormation::Init:\n", 1)
    stack = make_stack(body)
    common = ["-s", stack.name, "-r", stack.launch_resource, "--region", stack.region]
    res = run(instance, [aws_bin / "cfn-get-metadata", *common])
    assert res.returncode == 0, str(res)
    meta = json.loads(res.stdout)
    assert "ecs-bootstrap" in meta and "AWS::CloudFormation::Init" in meta
    assert "top-secret-pw" not in res.stdout + res.stderr
    assert meta["AWS::CloudFormation::Authentication"]["Web"]["password"] == "<redacted>"

    res = run(instance, [BIN, "get-metadata", *common, "-k",
                         "AWS::CloudFormation::Init.config.files./etc/ecs-bootstrap/motd.mode"])
    assert res.returncode == 0 and json.loads(res.stdout) == "000644", str(res)
    res = run(instance, [BIN, "get-metadata", *common, "-k", "AWS::CloudFormation::Init.nope"])
    assert res.returncode == 3 and "AWS::CloudFormation::Init.nope" in res.stderr, str(res)
