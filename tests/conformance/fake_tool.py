#!/usr/bin/env python3
"""One recording fake for every tool the Init engine calls, selected by the name it is run as.

yum dnf zypper rpm apt-get dpkg-query pip3 gem getent groupadd useradd usermod systemctl
chkconfig update-rc.d service su, plus `record` (for Init commands: records argv, cwd and environment).

Every call is appended to $FAKE_LOG (default: ../calls.jsonl from the fakes' directory) (JSONL: {"argv": [name, ...], "cwd": ..., "env": {...}}).
Answers come from the world state in $FAKE_WORLD (default ../world.json; JSON, rewritten after each changing call):
  rpm: [installed rpm names, "name" or "name-version"]   apt: ["name" or "name=version"]
  rpm_files: {basename: {"content", "mode", "dir_mode"}}  (written by `rpm -U <local file>`)
  pip: {name: version}                                   gem: {name: [versions]}
  groups: {name: {"gid": n, "members": [users]}}         users: {name: {"uid": n, "home": p}}
  units: {name: {"enabled": bool, "active": bool}}       (systemd units)
  sysv: {name: {"on": bool, "running": bool}}            (sysvinit services)
  fail: [{"argv": [prefix...], "exit": n, "stderr": "..."}]   (first matching prefix wins)
Exit codes and messages imitate the real tools closely enough for the engine's decisions
(getent 2 = absent, systemctl is-active 3 = inactive, groupadd 9 = exists, ...).
"""
import json
import os
import sys

NAME = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
# A command with its own `env` has neither variable: then the files next to the fakes' directory.
HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
WORLD_PATH = os.environ.get("FAKE_WORLD") or os.path.join(HERE, "..", "world.json")
LOG_PATH = os.environ.get("FAKE_LOG") or os.path.join(HERE, "..", "calls.jsonl")

with open(WORLD_PATH) as f:
    W = json.load(f)
for k, default in (("rpm", []), ("apt", []), ("pip", {}), ("gem", {}), ("groups", {}),
                   ("users", {}), ("units", {}), ("sysv", {}), ("fail", [])):
    W.setdefault(k, default)

with open(LOG_PATH, "a") as f:
    f.write(json.dumps({"argv": [NAME] + ARGS, "cwd": os.getcwd(), "env": dict(os.environ)}) + "\n")


def save():
    tmp = WORLD_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(W, f, indent=1)
    os.replace(tmp, WORLD_PATH)


def out(code, stdout="", stderr=""):
    if stdout:
        sys.stdout.write(stdout if stdout.endswith("\n") else stdout + "\n")
    if stderr:
        sys.stderr.write(stderr if stderr.endswith("\n") else stderr + "\n")
    sys.exit(code)


for rule in W["fail"]:
    prefix = rule["argv"]
    if [NAME] + ARGS[: len(prefix) - 1] == prefix:
        out(rule.get("exit", 1), rule.get("stdout", ""), rule.get("stderr", f"{NAME}: injected failure"))


def positional(args, with_value=()):
    """Arguments that are not options (skipping the values of `with_value` options)."""
    res, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in with_value:
            skip = True
        elif not a.startswith("-"):
            res.append(a)
    return res


def opt(args, name):
    return args[args.index(name) + 1] if name in args else None


def install_rpms(specs):
    for s in specs:
        if s not in W["rpm"]:
            W["rpm"].append(s)
    save()
    out(0, "Complete!")


if NAME == "record":
    code = int(opt(ARGS, "--exit") or 0)
    out(code, "recorded " + " ".join(ARGS))

if NAME == "su":
    # `su USER -c COMMAND [ARG...]`: runs COMMAND with /bin/sh (ARGs are $0, $1, ...), as util-linux
    # su does with the user's shell, without changing user.
    import subprocess
    user, rest = ARGS[0], ARGS[1:]
    if user not in W["users"] and user != "root":
        out(1, stderr=f"su: user {user} does not exist or the user entry does not contain all the required fields")
    if rest[:1] != ["-c"] or len(rest) < 2:
        out(1, stderr=f"su (fake): unsupported call {ARGS}")
    sys.exit(subprocess.call(["/bin/sh", "-c"] + rest[1:]))

def rpm_version(entry, name):
    """The VERSION-RELEASE of an rpm world entry ("name" is 1.0-1, "name-V-R" is V-R), or None."""
    if entry == name:
        return "1.0-1"
    if entry.startswith(name + "-") and entry[len(name) + 1:][:1].isdigit():
        return entry[len(name) + 1:]
    return None


def rpm_file_nv(base):
    """(NAME, VERSION-RELEASE) from an rpm file name or world entry: the first dash-separated
    field starting with a digit begins the version; an arch suffix and .rpm are dropped."""
    base = base[:-4] if base.endswith(".rpm") else base
    for arch in (".noarch", ".x86_64", ".aarch64", ".i386", ".i686"):
        if base.endswith(arch):
            base = base[: -len(arch)]
    parts = base.split("-")
    for i in range(1, len(parts)):
        if parts[i][:1].isdigit():
            return "-".join(parts[:i]), "-".join(parts[i:])
    return base, "1.0-1"


if NAME in ("yum", "dnf", "zypper"):
    pos = positional(ARGS)
    if pos[:1] == ["downgrade"] or "--oldpackage" in ARGS:
        pos = ["downgrade"] + pos[1:]
        for spec in pos[1:]:
            W["rpm"] = [e for e in W["rpm"] if not any(
                rpm_version(e, spec[:i]) for i in range(1, len(spec)) if spec[i] == "-")]
        install_rpms(pos[1:])
    if pos[:1] != ["install"]:
        out(1, stderr=f"{NAME}: unsupported by the fake: {ARGS}")
    install_rpms(pos[1:])

if NAME == "rpm":
    if ARGS[:1] == ["-qa"]:
        # `rpm -qa --queryformat '%{NAME}|%{VERSION}-%{RELEASE}' --nosignature NAME`
        name = ARGS[-1]
        for e in W["rpm"]:
            v = rpm_version(e, name)
            if v:
                out(0, f"{name}|{v}")
        out(0)
    if ARGS[:1] == ["-qp"]:
        # `rpm -qp --queryformat '%{NAME}|%{VERSION}-%{RELEASE}' --nosignature FILE`: read from
        # the file's name (NAME-VERSION[-RELEASE][.ARCH].rpm; no version is 1.0-1); a file
        # listed in `rpm_unreadable` cannot be read.
        src = ARGS[-1]
        if src in W.get("rpm_unreadable", []):
            out(1, stderr=f"error: open of {src} failed")
        name, ver = rpm_file_nv(src.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
        out(0, f"{name}|{ver}")
    if ARGS[:1] == ["-q"]:
        q = ARGS[-1]
        if q in W["rpm"] or any("-".join(rpm_file_nv(e)) == q for e in W["rpm"]):
            out(0, q)
        out(1, f"package {q} is not installed")
    if ARGS[:1] == ["-U"]:
        for src in positional(ARGS):
            if os.path.isfile(src):
                # A downloaded file: what it held and how private it was, for the expectations.
                with open(src, "rb") as f:
                    data = f.read()
                W.setdefault("rpm_files", {})[os.path.basename(src)] = {
                    "content": data.decode(errors="replace"),
                    "mode": "%04o" % (os.stat(src).st_mode & 0o7777),
                    "dir_mode": "%04o" % (os.stat(os.path.dirname(src)).st_mode & 0o7777)}
            name = os.path.basename(src)
            name = name[:-4] if name.endswith(".rpm") else name
            if name not in W["rpm"]:
                W["rpm"].append(name)
        save()
        out(0)
    out(1, stderr=f"rpm: unsupported by the fake: {ARGS}")

if NAME == "dpkg-query":
    # `dpkg-query -f '${Status}|${Package}=${Version}' -W NAME`; apt entries are "name" (version
    # 1.0) or "name=version".
    name = positional(ARGS)[-1]
    for entry in W["apt"]:
        n, _, v = entry.partition("=")
        if n == name:
            out(0, f"install ok installed|{n}={v or '1.0'}")
    out(1, stderr=f"dpkg-query: no packages found matching {name}")

if NAME == "apt-get":
    if os.environ.get("DEBIAN_FRONTEND") != "noninteractive":
        out(1, stderr="apt-get (fake): would prompt: DEBIAN_FRONTEND is not noninteractive")
    pos = positional(ARGS)
    for spec in pos[1:]:
        n = spec.split("=")[0]
        W["apt"] = [e for e in W["apt"] if e.partition("=")[0] != n] + [spec]
    save()
    out(0, "done")

if NAME == "pip3":
    pos = positional(ARGS)
    if pos[0] == "show":
        n = pos[1]
        if n in W["pip"]:
            out(0, f"Name: {n}\nVersion: {W['pip'][n]}")
        out(1, stderr=f"WARNING: Package(s) not found: {n}")
    if pos[0] == "install":
        for spec in pos[1:]:
            n, _, v = spec.partition("==")
            W["pip"][n] = v or "1.0"
        save()
        out(0, "Successfully installed")

if NAME == "gem":
    v = opt(ARGS, "-v")
    pos = positional(ARGS, ("-v",))
    if pos[0] == "list":
        n = pos[1]
        ok = n in W["gem"] and (v is None or v in W["gem"][n])
        out(0 if ok else 1, "true" if ok else "false")
    if pos[0] == "install":
        W["gem"].setdefault(pos[1], []).append(v or "1.0")
        save()
        out(0, "1 gem installed")

if NAME == "getent" and ARGS == ["group"]:
    # The whole database, as `getent group` lists it.
    out(0, "\n".join(f"{n}:x:{g['gid']}:{','.join(g.get('members', []))}" for n, g in W["groups"].items()))

if NAME == "getent":
    db, key = ARGS[0], ARGS[1]
    if db == "group" and key in W["groups"]:
        g = W["groups"][key]
        out(0, f"{key}:x:{g['gid']}:{','.join(g.get('members', []))}")
    if db == "passwd" and key in W["users"]:
        u = W["users"][key]
        out(0, f"{key}:x:{u['uid']}:{u.get('gid', u['uid'])}::{u.get('home', '/')}:/sbin/nologin")
    out(2)


def free_id(used):
    n = 999
    while n in used:
        n -= 1
    return n


if NAME == "groupadd":
    name = positional(ARGS, ("-g",))[-1]
    if name in W["groups"]:
        out(9, stderr=f"groupadd: group '{name}' already exists")
    gid = opt(ARGS, "-g")
    used = {g["gid"] for g in W["groups"].values()}
    if gid is not None and int(gid) in used:
        out(4, stderr=f"groupadd: GID '{gid}' already exists")
    W["groups"][name] = {"gid": int(gid) if gid else free_id(used), "members": []}
    save()
    out(0)


def set_groups(user, groups):
    # -G takes names or gids, as the real tools do.
    by_gid = {str(g["gid"]): n for n, g in W["groups"].items()}
    groups = [by_gid.get(n, n) for n in groups]
    for n in groups:
        if n not in W["groups"]:
            out(6, stderr=f"{NAME}: group '{n}' does not exist")
    for n, g in W["groups"].items():
        members = [m for m in g.get("members", []) if m != user]
        if n in groups:
            members.append(user)
        g["members"] = members


if NAME == "useradd":
    name = positional(ARGS, ("-u", "-d", "-G", "--shell", "-g"))[-1]
    if name in W["users"]:
        out(9, stderr=f"useradd: user '{name}' already exists")
    uid = opt(ARGS, "-u")
    used = {u["uid"] for u in W["users"].values()}
    groups = [g for g in (opt(ARGS, "-G") or "").split(",") if g]
    set_groups(name, groups)
    W["users"][name] = {"uid": int(uid) if uid else free_id(used), "home": opt(ARGS, "-d") or f"/home/{name}",
                        "shell": opt(ARGS, "--shell")}
    save()
    out(0)

if NAME == "usermod":
    name = positional(ARGS, ("-d", "-G"))[-1]
    if name not in W["users"]:
        out(6, stderr=f"usermod: user '{name}' does not exist")
    if "-G" in ARGS:
        set_groups(name, [g for g in opt(ARGS, "-G").split(",") if g])
    if "-d" in ARGS:
        W["users"][name]["home"] = opt(ARGS, "-d")
    save()
    out(0)

if NAME == "systemctl":
    pos = positional(ARGS)
    verb = pos[0]
    if verb == "daemon-reload":
        out(0)
    unit = pos[1]
    name = unit[: -len(".service")] if unit.endswith(".service") else unit
    u = W["units"].get(name)
    if verb == "is-active":
        out(0 if u and u["active"] else 3, "active" if u and u["active"] else "inactive")
    if u is None:
        if verb in ("enable", "disable"):
            out(1, stderr=f"Failed to {verb} unit: Unit file {name}.service does not exist.")
        out(5, stderr=f"Failed to {verb} {name}.service: Unit {name}.service not found.")
    if verb in ("enable", "disable"):
        u["enabled"] = verb == "enable"
    elif verb in ("start", "restart", "reload-or-restart"):
        u["active"] = True
    elif verb == "stop":
        u["active"] = False
    else:
        out(1, stderr=f'Unknown command verb "{verb}".')
    save()
    out(0)

if NAME in ("chkconfig", "update-rc.d", "service"):
    name, verb = ARGS[0], ARGS[1]
    s = W["sysv"].get(name)
    if s is None:
        if NAME == "chkconfig":
            out(1, stderr=f"error reading information on service {name}: No such file or directory")
        if NAME == "update-rc.d":
            out(1, stderr=f"update-rc.d: error: cannot find a LSB script for {name}")
        out(1, stderr=f"{name}: unrecognized service")
    if NAME == "chkconfig":
        s["on"] = verb == "on"
    elif NAME == "update-rc.d":
        s["on"] = verb == "enable"
    elif verb == "status":
        out(0 if s["running"] else 3, f"{name} is {'running' if s['running'] else 'stopped'}")
    elif verb in ("start", "restart"):
        s["running"] = True
    elif verb == "stop":
        s["running"] = False
    save()
    out(0)

out(1, stderr=f"fake {NAME}: unsupported call {ARGS}")
