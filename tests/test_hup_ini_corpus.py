"""Python's own `configparser` on a corpus of cfn-hup-style files: the expected values for our
reader (src/hup/ini.rs).

cfn-hup reads its files with `ConfigParser.SafeConfigParser()` (update_hooks.py:47,76@25fabe91),
which on Python 3.2..3.11 is a deprecated alias of `configparser.ConfigParser` (removed in 3.12).
This script builds a plain `ConfigParser()` (the same class without the warning), writes each
case's files to a temporary directory and reads them in order with `read([files])`, and records the sections, every option's
`get()` (or the error class), or the error the read raised. It imports nothing from
cfn-bootstrap.

    python3 tests/test_hup_ini_corpus.py           # check tests/fixtures/hup_ini_corpus.json
    python3 tests/test_hup_ini_corpus.py --write   # re-record it (commit the diff)

The Rust unit test `hup::ini::tests::python_corpus` reads the fixture and compares; the pytest
test below checks the fixture still matches this machine's Python.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hup_ini_corpus.json"

# (name, [file texts read in order]). Texts are exact: \r, tabs and odd whitespace matter.
CASES: list[tuple[str, list[str]]] = [
    ("classic", ["[main]\nstack=arn:aws:cloudformation:us-east-1:1:stack/s/x\nregion=us-east-1\ninterval=5\n"]),
    ("classic_hooks", [
        "[cfn-auto-reloader-hook]\ntriggers=post.update\npath=Resources.LaunchConfig.Metadata.AWS::CloudFormation::Init\n"
        "action=/opt/aws/bin/cfn-init -v --stack s --resource LaunchConfig --region us-east-1\nrunas=root\n"
    ]),
    ("colon_and_equals", ["[s]\na: 1\nb = x:y=z\nc:=d\nd =: e\n"]),
    ("keys_lowercased_sections_not", ["[S]\nKey = 1\n[s]\nKEY = 2\n"]),
    ("spaces_in_keys", ["[s]\nmy key  =  v  \n  indented = 2\n"]),
    ("comments", ["# top\n; top\n[s]\n# c\n  ; c\na = 1 # kept\nb = 2 ; kept\n#c = 3\n"]),
    ("continuations", ["[s]\naction = line1\n  line2\n\n\tline3\n  # comment inside\n\n\nb = 1\n"]),
    ("continuation_after_indented_option", ["[s]\n  a = 1\n  b = 2\n    more\n  c = 3\n"]),
    ("empty_value", ["[s]\na =\nb:\nc = \n  cont\n"]),
    ("greedy_header", ["[a] b]x\nk=1\n[ c ]\nk = 2\n[[d]]\nk=3\n"]),
    ("default_inheritance", ["[DEFAULT]\nrunas = root\ntriggers = post.update\n[h1]\npath = p\n[h2]\npath = q\nrunas = nobody\n"]),
    ("default_lowercase_is_ordinary", ["[default]\nx = 1\n[s]\ny = 2\n"]),
    ("default_twice", ["[DEFAULT]\na = 1\n[s]\n[DEFAULT]\nb = 2\n"]),
    ("merge_files", ["[h]\na = 1\nb = 2\n[g]\nz = 0\n", "[x]\n[h]\na = 3\n", "[DEFAULT]\nd = 4\n[g]\n"]),
    ("same_option_in_two_files", ["[h]\na = 1\n", "[h]\na = 2\n[h2]\n"]),
    ("duplicate_section", ["[a]\nk = 1\n[b]\n[a]\n"]),
    ("duplicate_option", ["[a]\nk = 1\nK: 2\n"]),
    ("duplicate_default_option", ["[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n"]),
    ("duplicate_in_second_file", ["[a]\nk = 1\n", "[a]\nk = 2\nk = 3\n"]),
    ("missing_header", ["k = v\n[s]\n"]),
    ("empty_header_is_not_a_header", ["[]\n"]),
    ("bad_lines", ["[s]\njunk\nk = 1\n= v\n"]),
    ("bad_line_then_duplicate", ["[s]\njunk\nk = 1\nk = 2\n"]),
    ("crlf_and_cr", ["[s]\r\na = 1\rb = 2\r\n  c\r\n"]),
    ("bom", ["\ufeff[s]\na = 1\n"]),
    ("odd_whitespace", ["[s]\na = \x1cv\x1d\nb =\u3000w\u00a0\n\u3000c = 1\n  d\n"]),
    ("form_feed_and_vt_do_not_split", ["[s]\na = x\x0cy\x0bz\n"]),
    ("empty_file", [""]),
    ("only_comments", ["# nothing\n"]),
    ("interp_basic", ["[DEFAULT]\ndir = /etc/cfn\n[h]\naction = %(dir)s/x 100%% %(Name)s\nname = n\n"]),
    ("interp_errors", ["[h]\nbad = 5%\nbad2 = %(x)d\nmissing = %(nope)s\nempty = %()s\ntrail = %\nok = %%\nparen = %(a\n"]),
    ("interp_nested_from_section", ["[DEFAULT]\nx = <%(y)s>\ny = d\n[h]\ny = h\nv = %(x)s\n[g]\nv = %(x)s\n"]),
    ("interp_case_of_reference", ["[s]\nname = v\nref = %(NAME)s %(Name)s\n"]),
    ("interp_self", ["[s]\na = %(a)s\n"]),
    ("interp_cycle", ["[s]\na = %(b)s\nb = %(a)s\n"]),
    ("interp_chain_9", ["[s]\n" + "".join(f"v{k} = %(v{k + 1})s\n" for k in range(9)) + "v9 = end\n"]),
    ("interp_chain_10", ["[s]\n" + "".join(f"v{k} = %(v{k + 1})s\n" for k in range(10)) + "v10 = end\n"]),
    ("interp_chain_11", ["[s]\n" + "".join(f"v{k} = %(v{k + 1})s\n" for k in range(11)) + "v11 = end\n"]),
    ("interp_chain_10_percent_end", ["[s]\n" + "".join(f"v{k} = %(v{k + 1})s\n" for k in range(10)) + "v10 = 5%%\n"]),
    ("interp_multiline", ["[DEFAULT]\ncmd = a\n  b\n[s]\nx = [%(cmd)s]\n"]),
    ("interp_across_files", ["[DEFAULT]\nbin = /opt/aws/bin\n", "[h]\naction = %(bin)s/cfn-init\n"]),
    ("unicode", ["[sé]\nclé = valeur ü\nİ = dotted\n"]),
]


def run_case(files: list[str]) -> dict:
    p = configparser.ConfigParser()
    # Real files, read by name as cfn-hup does: `open()` in text mode (universal newlines),
    # not `read_string` (whose StringIO splits lines on `\n` only).
    with tempfile.TemporaryDirectory() as d:
        names = []
        for i, text in enumerate(files):
            name = os.path.join(d, "f%d" % i)
            with open(name, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            names.append(name)
        try:
            p.read(names, encoding="utf-8")
        except configparser.Error as e:
            return {"error": type(e).__name__}
    out: dict = {"sections": p.sections(), "values": {}}
    for section in ["DEFAULT"] + p.sections():
        names = sorted(p.defaults()) if section == "DEFAULT" else sorted(p.options(section))
        vals = {}
        for name in names:
            try:
                vals[name] = {"value": p.get(section, name)}
            except configparser.Error as e:
                vals[name] = {"error": type(e).__name__}
        out["values"][section] = vals
    return out


def corpus() -> str:
    cases = [{"name": n, "files": f, "expect": run_case(f)} for n, f in CASES]
    doc = {
        "generated_by": "tests/test_hup_ini_corpus.py (CPython 3.11 configparser)",
        "cases": cases,
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def test_fixture_matches_this_python():
    if sys.version_info[:2] >= (3, 12):
        import pytest

        pytest.skip("cfn-hup needs SafeConfigParser, gone in Python 3.12")
    assert FIXTURE.read_text() == corpus(), "re-record with: python3 tests/test_hup_ini_corpus.py --write"


if __name__ == "__main__":
    text = corpus()
    if "--write" in sys.argv:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(text)
        print(f"wrote {FIXTURE}")
    elif FIXTURE.read_text() != text:
        print("fixture differs from this Python's configparser; re-record with --write", file=sys.stderr)
        sys.exit(1)
    else:
        print("fixture matches")
