"""End-to-end: Init `sources`, `files.source` / `context` / `authentication` and
`AWS::CloudFormation::Authentication`, against moto S3, a local HTTP server and the IMDS double
(instance-role credentials)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from harness.aws import EXAMPLES, example_template, wait_signals
from harness.http_files import FileServer
from harness.instance import bootstrap_bin

BIN = bootstrap_bin()
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"ecs-bootstrap binary not found at {BIN}")

PASSWORD = "hunter2-Pa55word"
ROLE = "ecs-instance-role"
ROLE_CREDS = {"AccessKeyId": "ASIAROLEKEYEXAMPLE", "SecretAccessKey": "role-secret-9f8e7d",
              "Token": "role-session-token-123"}
INIT_ANCHOR = "      AWS::CloudFormation::Init:\n        config:\n          files:\n"


def targz(entries: dict[str, bytes], top: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo((f"{top}/" if top else "") + name)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def web():
    s = FileServer().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def bucket(moto):
    import uuid

    name = f"artifacts-{uuid.uuid4().hex[:8]}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=name)
    return name


def stack_with(init_yaml: str) -> str:
    """The example stack with `init_yaml` (which opens the Init block and adds configs) in
    front of the example's own `config`."""
    body = example_template("stack.yml")
    assert INIT_ANCHOR in body, "the example's Init block moved: these tests would test nothing"
    rest = INIT_ANCHOR.split("\n", 1)[1]  # "        config:\n          files:\n"
    return body.replace(INIT_ANCHOR, init_yaml + rest, 1)


def metadata_block(web: FileServer, bucket: str, extra_sources: str = "") -> str:
    return f"""      AWS::CloudFormation::Authentication:
        WebCreds:
          type: basic
          username: deploy
          password: {PASSWORD}
          uris: ["{web.url}/private/"]
        BucketRole:
          type: S3
          roleName: {ROLE}
          buckets: ["{bucket}"]
      AWS::CloudFormation::Init:
        configSets:
          default: [artifacts, config]
        artifacts:
          sources:
            /opt/app: s3://{bucket}/app.tar.gz
            /opt/tools: {web.url}/private/tools.zip
{extra_sources}          files:
            /etc/app/app.conf:
              source: {web.url}/private/app.conf.mustache
              context:
                cluster: prod & co
                port: 8080
              mode: "000640"
            /etc/app/settings.json:
              source: s3://{bucket}/settings.json
              authentication: BucketRole
"""


def secrets_nowhere(instance, res) -> None:
    for secret in (PASSWORD, ROLE_CREDS["SecretAccessKey"], ROLE_CREDS["Token"]):
        assert secret not in res.stdout + res.stderr, f"{secret!r} was logged\n{res}"
        for path in instance.files():
            p = instance.path(path)
            if p.is_file() and not p.is_symlink():
                assert secret.encode() not in p.read_bytes(), f"{secret!r} written to {path}"


def test_sources_and_file_sources_with_authentication(moto, instance, make_stack, web, bucket):
    s3 = moto.client("s3")
    s3.put_object(Bucket=bucket, Key="app.tar.gz",
                  Body=targz({"bin/run": b"#!/bin/sh\necho run\n", "README": b"app"}))
    s3.put_object(Bucket=bucket, Key="settings.json", Body=b'{"level": "info"}')
    web.files["/private/tools.zip"] = zipped({"tools/x.sh": b"echo x\n"})
    web.files["/private/app.conf.mustache"] = b"cluster={{cluster}}\nport={{port}}\n"
    web.auth["/private/"] = ("deploy", PASSWORD)
    instance.imds.identity.role_credentials = {ROLE: ROLE_CREDS}

    stack = make_stack(stack_with(metadata_block(web, bucket)))
    res = instance.run_bootstrap(*stack.run_args("--timeout", "60"), "-v", timeout=120)
    assert res.returncode == 0, str(res)
    sigs = wait_signals(moto, stack.name, 1)
    assert [s["Status"] for s in sigs] == ["SUCCESS"]

    assert instance.path("/opt/app/bin/run").read_bytes() == b"#!/bin/sh\necho run\n"
    assert instance.path("/opt/app/bin/run").stat().st_mode & 0o777 == 0o755
    assert instance.path("/opt/tools/tools/x.sh").read_bytes() == b"echo x\n"
    conf = instance.path("/etc/app/app.conf")
    assert conf.read_text() == "cluster=prod &amp; co\nport=8080\n"  # {{x}} is HTML-escaped
    assert conf.stat().st_mode & 0o777 == 0o640
    assert json.loads(instance.path("/etc/app/settings.json").read_text()) == {"level": "info"}

    # Basic auth was sent to the private URIs only when asked for, with the right password
    # (the server answers 401 otherwise, and the run would have failed).
    assert {s.path for s in web.log} == {"/private/tools.zip", "/private/app.conf.mustache"}
    # roleName: the role's credentials were read from IMDS.
    assert instance.imds.requests(path=f"/latest/meta-data/iam/security-credentials/{ROLE}")
    secrets_nowhere(instance, res)


def test_wrong_password_fails_fast_naming_the_file(moto, instance, make_stack, web, bucket):
    s3 = moto.client("s3")
    s3.put_object(Bucket=bucket, Key="app.tar.gz", Body=targz({"a": b"1"}))
    web.files["/private/tools.zip"] = zipped({"x": b"1"})
    web.auth["/private/"] = ("deploy", "a-different-password")
    instance.imds.identity.role_credentials = {ROLE: ROLE_CREDS}
    stack = make_stack(stack_with(metadata_block(web, bucket)))
    res = instance.run_bootstrap(*stack.run_args("--timeout", "60"), timeout=120)
    assert res.returncode not in (0, None), str(res)
    assert [s["Status"] for s in wait_signals(moto, stack.name, 1)] == ["FAILURE"]
    last = res.stderr.strip().splitlines()[-1]
    assert "FAILURE" in last and "sources./opt/tools" in last and "401" in last, last
    secrets_nowhere(instance, res)


def test_archive_escaping_its_target_is_refused(moto, instance, make_stack, web, bucket):
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as t:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    web.files["/public/evil.tgz"] = evil.getvalue()
    init = f"""      AWS::CloudFormation::Init:
        configSets:
          default: [evil, config]
        evil:
          sources:
            /opt/evil: {web.url}/public/evil.tgz
"""
    stack = make_stack(stack_with(init))
    res = instance.run_bootstrap(*stack.run_args("--timeout", "60"), timeout=120)
    assert res.returncode == 3, str(res)
    assert [s["Status"] for s in wait_signals(moto, stack.name, 1)] == ["FAILURE"]
    assert "../../escaped.txt" in res.stderr.strip().splitlines()[-1], res.stderr
    assert not (instance.root.parent / "escaped.txt").exists()
    assert "/escaped.txt" not in instance.files()


def test_dry_run_shows_sources_and_redacts_authentication(instance, tmp_path):
    web = FileServer().start()
    try:
        template = tmp_path / "stack.yml"
        template.write_text(stack_with(metadata_block(web, "my-bucket")))
        for output in ("text", "json"):
            res = instance.run_bootstrap(
                "--dry-run", "--template", str(template),
                "--param", "VpcId=vpc-12345678", "--param", "Subnets=subnet-1,subnet-2",
                "--output", output, timeout=60, defaults=False)
            assert res.returncode == 0, str(res)
            assert PASSWORD not in res.stdout + res.stderr
            assert "s3://my-bucket/app.tar.gz" in res.stdout
            assert "/etc/app/app.conf" in res.stdout
            if output == "json":
                plan = json.loads(res.stdout)
                auth = plan["init"]["authentication"]
                assert auth["WebCreds"]["password"] == "<redacted>", auth
                assert auth["BucketRole"]["credentials"] == {"role": ROLE}, auth
                src = plan["init"]["configs"][0]["sources"]
                assert {s["target"] for s in src} == {"/opt/app", "/opt/tools"}
            else:
                assert "unpack s3://my-bucket/app.tar.gz into /opt/app" in res.stdout
                assert "authentication WebCreds: basic as deploy (password <redacted>)" in res.stdout
        assert instance.files() == []
        assert web.log == [], "a dry run must not download anything"
    finally:
        web.stop()
