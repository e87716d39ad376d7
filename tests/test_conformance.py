"""cfn-init conformance suite: `ecs-bootstrap init --root R metadata.json`, one case per directory.

tests/conformance/cases/<name>/
  metadata.json   the resource's Metadata (with `AWS::CloudFormation::Init`). `{root}`, `{bin}`
                  and `{tmp}` are replaced by the test root, the fakes' directory and the case's
                  scratch directory.
  http.json       optional: a file server on 127.0.0.1 for the case, its base URL `{http}`
                  (see `HttpWorld`): {"serve": {"/url/path" | "http://host/path": "file in the
                  case directory"}, "archives": {"/x.tar.gz": {"format": "tar.gz"|"tar"|"tar.bz2"|
                  "tar.xz"|"zip", "dir": "fixtures/app", "top": "owner-repo-sha", "entries":
                  {"name": "text" | {"content": "..", "mode": "0755"}}}}, "auth": {"/prefix/":
                  ["user", "password"]}}. The engine runs with HTTP_PROXY pointing at it (and
                  NO_PROXY=127.0.0.1), so `http://github.com/...` URLs are answered by the case's
                  server and nothing leaves the machine (HTTPS_PROXY too: a tunnel it refuses); TMPDIR is `{tmp}/tmpdir`, which must be
                  empty again when the run ends.
  s3.json         optional: objects in a fresh bucket `{bucket}` of a moto S3 that checks
                  signatures (see `S3World`): {"objects": {"key": "file in the case directory" |
                  {"archive": {...as in http.json...}}}}. `{s3_access_key}` / `{s3_secret_key}`
                  are an IAM user's keys allowed to read it; the engine gets
                  AWS_ENDPOINT_URL_S3 (so only s3:// URLs, which use it, may appear in a case:
                  an https://*.amazonaws.com URL would leave the machine).
  world.json      optional: what the fakes report as installed/existing (see
                  conformance/fake_tool.py), `files` already under the root before the run
                  ({"/etc/x": {"content": "...", "mode": "0640"}}), and `missing_tools` (fakes
                  not put on PATH; the case then runs with only the fakes on PATH).
  expect.json     {"args": [...extra init args...], "stdin": false,
                   "exit_code": 0, "stderr_contains": ["..."], "stderr_excludes": ["..."],
                   "files": {"/path": {"content": "..." | "content_json": {...} |
                             "content_base64": "...", "mode": "0644", "owner": "root",
                             "group": "root", "symlink": "target", "absent": true}},
                                                # (a symlink's owner/group are the link's own)
                   "calls": [["argv", ...] | {"argv": [...], "env": {...}, "env_absent": [...],
                             "cwd": "..."}],       # every fake call, in order, exactly
                   "world": {...},                  # subset of the fakes' state afterwards
                   "http_log": [["GET", "/path", 200], ...],  # every request, in order, exactly;
                                                # a 4th item "basic:<user>" when it sent credentials
                   "secrets": ["..."],  # never in stdout, stderr or any file under the root
                   "record": {...}}                 # subset of /var/lib/ecs-bootstrap/init.json
An argv element of an expected call written `glob:PATTERN` matches by fnmatch (temporary paths).
Every tool the engine runs (package managers, getent/groupadd/useradd/usermod, systemctl,
chkconfig/service) is the recording fake, first on PATH; Init commands call `record` to log
their argv, cwd and environment.
"""

from __future__ import annotations

import base64
import fnmatch
import grp
import io
import json
import os
import pwd
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from harness.aws import REPO_ROOT
from harness.http_files import FileServer
from harness.instance import bootstrap_bin

CASES = REPO_ROOT / "tests" / "conformance" / "cases"
FAKE = REPO_ROOT / "tests" / "conformance" / "fake_tool.py"
TOOLS = ["yum", "dnf", "zypper", "rpm", "apt-get", "dpkg-query", "pip3", "gem", "getent",
         "groupadd", "useradd", "usermod", "systemctl", "chkconfig", "update-rc.d", "service", "su", "record"]


def binary() -> str:
    return str(bootstrap_bin())


def substitute(value, subs: dict[str, str]):
    if isinstance(value, str):
        for k, v in subs.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, list):
        return [substitute(v, subs) for v in value]
    if isinstance(value, dict):
        return {substitute(k, subs): substitute(v, subs) for k, v in value.items()}
    return value


def subset(want, got, where="world") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        errs = []
        for k, v in want.items():
            if k not in got:
                errs.append(f"{where}.{k}: missing (have {sorted(got)})")
            else:
                errs.extend(subset(v, got[k], f"{where}.{k}"))
        return errs
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [e for i, (w, g) in enumerate(zip(want, got)) for e in subset(w, g, f"{where}[{i}]")]
    return [] if want == got else [f"{where}: expected {want!r}, got {got!r}"]


def archive(spec: dict, case_dir: Path) -> bytes:
    """An archive built at test time: the files under `dir` (modes as on disk) plus `entries`
    (written as given, so a case can hold a hostile name such as `../x`), under `top/` if set."""
    fmt = spec["format"]
    top = spec.get("top")
    members: list[tuple[str, bytes, int]] = []
    if "dir" in spec:
        base = case_dir / spec["dir"]
        for p in sorted(base.rglob("*")):
            if p.is_file():
                members.append((p.relative_to(base).as_posix(), p.read_bytes(),
                                stat.S_IMODE(p.stat().st_mode)))
    for name, e in spec.get("entries", {}).items():
        e = {"content": e} if isinstance(e, str) else e
        members.append((name, e["content"].encode(), int(e.get("mode", "0644"), 8)))
    if top:
        members = [(f"{top}/{n}", d, m) for n, d, m in members]
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for name, data, mode in members:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.external_attr = (0o100000 | mode) << 16
                z.writestr(info, data)
        return buf.getvalue()
    mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data, m in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), m, 1704067200
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class HttpWorld:
    """The case's file server (http.json): files of the case directory, archives built from
    fixtures, basic auth by path prefix, a log of every request with its status."""

    def __init__(self, spec: dict, case_dir: Path):
        self.server = FileServer()
        for path, file in spec.get("serve", {}).items():
            self.server.files[path] = (case_dir / file).read_bytes()
        for path, a in spec.get("archives", {}).items():
            self.server.files[path] = archive(a, case_dir)
        for prefix, (user, password) in spec.get("auth", {}).items():
            self.server.auth[prefix] = (user, password)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def log(self) -> list[list]:
        """[method, path, status], plus "basic:<user>" when the request carried basic
        credentials (the user only: a log never holds the password)."""
        out = []
        for s in self.server.log:
            entry: list = [s.method, s.path, s.status]
            a = s.headers.get("authorization", "")
            if a.startswith("Basic "):
                entry.append("basic:" + base64.b64decode(a[6:]).decode().split(":", 1)[0])
            elif a:
                entry.append(a.split(" ", 1)[0])
            out.append(entry)
        return out

    def stop(self) -> None:
        self.server.stop()


class S3World:
    """A moto server of its own that enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT): a request
    signed with a wrong secret gets 403 SignatureDoesNotMatch, as from S3. Three unauthenticated
    calls create the IAM user whose keys the cases use; everything after is signed."""

    def __init__(self, log_path: Path):
        import boto3

        from harness.aws import MotoServer

        self.server = MotoServer(log_path, env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}).start()
        base = {"region_name": "us-east-1", "endpoint_url": self.server.url}
        iam = boto3.client("iam", aws_access_key_id="testing", aws_secret_access_key="testing", **base)
        iam.create_user(UserName="artifacts-reader")
        key = iam.create_access_key(UserName="artifacts-reader")["AccessKey"]
        iam.put_user_policy(UserName="artifacts-reader", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.s3 = boto3.client("s3", aws_access_key_id=self.access_key,
                               aws_secret_access_key=self.secret_key, **base)

    @property
    def url(self) -> str:
        return self.server.url

    def bucket(self, spec: dict, case_dir: Path) -> str:
        import uuid

        name = f"case-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        for key, obj in spec.get("objects", {}).items():
            body = archive(obj["archive"], case_dir) if isinstance(obj, dict) else (case_dir / obj).read_bytes()
            self.s3.put_object(Bucket=name, Key=key, Body=body)
        return name

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def moto_s3():
    artifacts = REPO_ROOT / "tests" / ".artifacts"
    artifacts.mkdir(exist_ok=True)
    world = S3World(artifacts / "moto-s3-auth.log")
    try:
        yield world
    finally:
        world.stop()


def argv_matches(want: list[str], got: list[str]) -> bool:
    return len(want) == len(got) and all(
        fnmatch.fnmatchcase(g, w[5:]) if w.startswith("glob:") else w == g
        for w, g in zip(want, got))


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expect.json").exists())


class Case:
    def __init__(self, name: str, tmp: Path, s3: "S3World | None" = None):
        self.dir = CASES / name
        self.tmp = tmp
        self.root = tmp / "root"
        self.bin = tmp / "bin"
        self.root.mkdir()
        self.bin.mkdir()
        # `~` in a command's cwd: the home of the user running ecs-bootstrap, kept under the root.
        self.home = self.root / "root"
        self.home.mkdir()
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir()
        self.subs = {"{root}": str(self.root), "{bin}": str(self.bin), "{tmp}": str(tmp)}
        http_file = self.dir / "http.json"
        self.http = HttpWorld(json.loads(http_file.read_text()), self.dir) if http_file.exists() else None
        if self.http:
            self.subs["{http}"] = self.http.url
        self.s3 = s3
        s3_file = self.dir / "s3.json"
        if s3_file.exists():
            assert s3 is not None, "a case with s3.json needs the moto_s3 fixture"
            self.subs.update({"{bucket}": s3.bucket(json.loads(s3_file.read_text()), self.dir),
                              "{s3_access_key}": s3.access_key, "{s3_secret_key}": s3.secret_key})
        self.expect = substitute(json.loads((self.dir / "expect.json").read_text()), self.subs)
        world_file = self.dir / "world.json"
        world = json.loads(world_file.read_text()) if world_file.exists() else {}
        world = substitute(world, self.subs)
        missing = world.pop("missing_tools", [])
        for t in TOOLS:
            if t not in missing:
                (self.bin / t).symlink_to(FAKE)
        # A missing tool must not be found on the host's PATH either (this machine has a real
        # update-rc.d): such a case runs with only the fakes' directory on PATH, plus python3 for
        # the fakes themselves.
        self.path = f"{self.bin}:{os.environ['PATH']}"
        if missing:
            (self.bin / "python3").symlink_to(sys.executable)
            self.path = str(self.bin)
        for path, spec in world.pop("files", {}).items():
            p = self.host(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(spec.get("content", ""))
            os.chmod(p, int(spec.get("mode", "0644"), 8))
        self.world = tmp / "world.json"
        self.world.write_text(json.dumps(world))
        self.log = tmp / "calls.jsonl"
        self.metadata = tmp / "metadata.json"
        self.metadata.write_text(substitute((self.dir / "metadata.json").read_text(), self.subs))

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def run(self) -> subprocess.CompletedProcess:
        env = {
            "PATH": self.path,
            "HOME": str(self.home),
            "FAKE_WORLD": str(self.world),
            "FAKE_LOG": str(self.log),
            "AWS_EC2_METADATA_DISABLED": "true",
            "ECS_BOOTSTRAP_LOG": "info",
            "TMPDIR": str(self.tmpdir),
        }
        if self.s3:
            env.update({"AWS_ENDPOINT_URL_S3": self.s3.url, "AWS_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": str(self.tmp / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "no-aws-credentials")})
        if self.http:
            # Any http:// host is answered by the case's server: nothing leaves 127.0.0.1.
            # (https:// ones ask it for a tunnel, which it refuses.)
            env.update({"HTTP_PROXY": self.http.url, "http_proxy": self.http.url,
                        "HTTPS_PROXY": self.http.url, "https_proxy": self.http.url,
                        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        stdin = self.expect.get("stdin", False)
        args = [binary(), "init", "--root", str(self.root), *self.expect.get("args", [])]
        args.append("-" if stdin else str(self.metadata))
        return subprocess.run(
            args,
            input=self.metadata.read_text() if stdin else None,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.tmp,
            timeout=120,
        )

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.mark.parametrize("name", case_names())
def test_case(name, tmp_path, request):
    s3 = request.getfixturevalue("moto_s3") if (CASES / name / "s3.json").exists() else None
    case = Case(name, tmp_path, s3)
    try:
        r = case.run()
    finally:
        if case.http:
            case.http.stop()
    e = case.expect
    calls = case.calls()
    report = (
        f"\n--- exit {r.returncode}\n--- stderr:\n{r.stderr}\n--- calls:\n"
        + "\n".join(" ".join(c["argv"]) for c in calls)
    )
    errors: list[str] = []

    if r.returncode != e.get("exit_code", 0):
        errors.append(f"exit code {r.returncode}, expected {e.get('exit_code', 0)}")
    for s in e.get("stderr_contains", []):
        if s not in r.stderr:
            errors.append(f"stderr lacks {s!r}")
    for s in e.get("stderr_excludes", []):
        if s in r.stderr:
            errors.append(f"stderr contains {s!r}")
    for secret in e.get("secrets", []):
        if secret in r.stdout + r.stderr:
            errors.append(f"secret {secret!r} in the output")
        for p in case.root.rglob("*"):
            if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes():
                errors.append(f"secret {secret!r} written to {p}")
    left = sorted(str(p) for p in case.tmpdir.rglob("*"))
    if left:
        errors.append(f"temporary files left behind: {left}")
    if "http_log" in e:
        if case.http is None:
            errors.append("http_log expected but the case has no http.json")
        elif case.http.log() != e["http_log"]:
            errors.append(f"http requests {case.http.log()}, expected {e['http_log']}")

    for path, want in e.get("files", {}).items():
        p = case.host(path)
        if want.get("absent"):
            if os.path.lexists(p):
                errors.append(f"{path}: exists, expected absent")
            continue
        if not os.path.lexists(p):
            errors.append(f"{path}: missing")
            continue
        st = os.lstat(p)
        if "symlink" in want:
            if not stat.S_ISLNK(st.st_mode):
                errors.append(f"{path}: not a symlink")
            elif os.readlink(p) != want["symlink"]:
                errors.append(f"{path}: links to {os.readlink(p)!r}, expected {want['symlink']!r}")
            # The link's own owner (lstat), not its target's.
            if "owner" in want and pwd.getpwuid(st.st_uid).pw_name != want["owner"]:
                errors.append(f"{path}: link owner {pwd.getpwuid(st.st_uid).pw_name}, expected {want['owner']}")
            if "group" in want and grp.getgrgid(st.st_gid).gr_name != want["group"]:
                errors.append(f"{path}: link group {grp.getgrgid(st.st_gid).gr_name}, expected {want['group']}")
            continue
        data = p.read_bytes()
        if "content" in want and data.decode(errors="replace") != want["content"]:
            errors.append(f"{path}: content {data!r}, expected {want['content']!r}")
        if "content_json" in want and json.loads(data) != want["content_json"]:
            errors.append(f"{path}: JSON {data!r}, expected {want['content_json']!r}")
        if "content_base64" in want and data != base64.b64decode(want["content_base64"]):
            errors.append(f"{path}: bytes {data!r} differ from content_base64")
        if "mode" in want and f"{stat.S_IMODE(st.st_mode):04o}" != want["mode"]:
            errors.append(f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, expected {want['mode']}")
        if "owner" in want and pwd.getpwuid(st.st_uid).pw_name != want["owner"]:
            errors.append(f"{path}: owner {pwd.getpwuid(st.st_uid).pw_name}, expected {want['owner']}")
        if "group" in want and grp.getgrgid(st.st_gid).gr_name != want["group"]:
            errors.append(f"{path}: group {grp.getgrgid(st.st_gid).gr_name}, expected {want['group']}")

    if "calls" in e:
        want_calls = [c if isinstance(c, dict) else {"argv": c} for c in e["calls"]]
        got_argv = [c["argv"] for c in calls]
        if len(got_argv) != len(want_calls) or not all(
                argv_matches(w["argv"], g) for w, g in zip(want_calls, got_argv)):
            errors.append(
                "calls differ:\n  expected: "
                + "\n            ".join(" ".join(c["argv"]) for c in want_calls)
                + "\n  got:      "
                + "\n            ".join(" ".join(a) for a in got_argv)
            )
        else:
            for want, got in zip(want_calls, calls):
                line = " ".join(want["argv"])
                for k, v in want.get("env", {}).items():
                    if got["env"].get(k) != v:
                        errors.append(f"`{line}`: env {k}={got['env'].get(k)!r}, expected {v!r}")
                for k in want.get("env_absent", []):
                    if k in got["env"]:
                        errors.append(f"`{line}`: env has {k}={got['env'][k]!r}, expected absent")
                if "cwd" in want and got["cwd"] != want["cwd"]:
                    errors.append(f"`{line}`: cwd {got['cwd']!r}, expected {want['cwd']!r}")

    if "world" in e:
        errors.extend(subset(e["world"], json.loads(case.world.read_text())))

    if "record" in e:
        rec = case.host("/var/lib/ecs-bootstrap/init.json")
        if not rec.exists():
            errors.append("no /var/lib/ecs-bootstrap/init.json")
        else:
            if stat.S_IMODE(rec.stat().st_mode) != 0o600:
                errors.append(f"init.json mode {stat.S_IMODE(rec.stat().st_mode):04o}, expected 0600")
            if stat.S_IMODE(rec.parent.stat().st_mode) != 0o700:
                errors.append(f"{rec.parent} mode {stat.S_IMODE(rec.parent.stat().st_mode):04o}, expected 0700")
            errors.extend(subset(e["record"], json.loads(rec.read_text()), "record"))

    assert not errors, "\n".join(errors) + report


def test_every_case_is_complete():
    """A case without an expectation of its outcome would pass whatever the binary did."""
    for name in case_names():
        e = json.loads((CASES / name / "expect.json").read_text())
        assert "calls" in e or "files" in e or "stderr_contains" in e or "world" in e or "record" in e, name
        if (CASES / name / "http.json").exists():
            assert "http_log" in e, f"{name}: a case with a server says which requests it expects"
        assert (CASES / name / "metadata.json").exists(), name
