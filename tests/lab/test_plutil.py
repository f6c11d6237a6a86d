# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated plutil, run through its wrapper script (docs/reference/macos.md#plutil)."""

from __future__ import annotations

import datetime
import json
import plistlib
import subprocess

import pytest
from pfguard_lab.commands import write_wrapper

PFCTL_JOB = {"Label": "com.apple.pfctl", "ProgramArguments": ["pfctl", "-f", "/etc/pf.conf"], "RunAtLoad": True}


@pytest.fixture
def plutil(tmp_path):
    wrapper = write_wrapper(tmp_path / "bin/plutil", "pfguard_lab.emulators.plutil")

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([str(wrapper), *args], cwd=tmp_path, capture_output=True, input=stdin, timeout=30)
        result.stdout_text = result.stdout.decode()
        result.stderr_text = result.stderr.decode()
        return result

    return run


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_lint_ok_echoes_the_path_as_given(plutil, tmp_path):
    write(tmp_path, "job.plist", plistlib.dumps(PFCTL_JOB))
    write(tmp_path, "bin.plist", plistlib.dumps(PFCTL_JOB, fmt=plistlib.FMT_BINARY))
    result = plutil("-lint", "job.plist", str(tmp_path / "bin.plist"))
    assert (result.returncode, result.stdout_text, result.stderr_text) == (
        0, f"job.plist: OK\n{tmp_path / 'bin.plist'}: OK\n", "")
    result = plutil("-lint", "-s", "job.plist")
    assert (result.returncode, result.stdout_text) == (0, "")
    assert plutil("job.plist").stdout_text == "job.plist: OK\n"  # -lint is the default


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<plist><dict><key>a</key>\n</dict></plist>", "Value missing for key inside <dict> at line 1"),
        (b"<plist><dict>\n<key>a</key><string>x</string>\n<string>y</string></dict></plist>",
         "Found non-key inside <dict> at line 3"),
        (b"<plist><dict><key>a</key><strin>x</strin></dict></plist>", "Encountered unknown tag strin on line 1"),
        (b"<plist><dict><key>a</key>", "Encountered unexpected EOF"),
        (b"", "Cannot parse a NULL or zero-length data"),
    ],
)
def test_lint_failures(plutil, tmp_path, body, message):
    write(tmp_path, "bad.plist", body)
    write(tmp_path, "good.plist", plistlib.dumps(PFCTL_JOB))
    result = plutil("-lint", "-s", "bad.plist", "good.plist")
    assert result.returncode == 1
    assert result.stderr_text == f"bad.plist: {message}\n"
    assert result.stdout_text == ""


def test_lint_missing_file(plutil):
    result = plutil("-lint", "nope.plist")
    assert result.returncode == 1
    assert result.stderr_text == "nope.plist: file does not exist or is not readable or is not a regular file\n"


def test_openstep_plists_fail_loudly(plutil, tmp_path):
    write(tmp_path, "old.plist", b'{ Label = "x"; }')
    result = plutil("-lint", "old.plist")
    assert result.returncode == 1
    assert result.stderr_text == "pfguard-lab: plutil: an OpenStep-format property list is not supported by the lab\n"


def test_convert_between_formats(plutil, tmp_path):
    path = write(tmp_path, "job.plist", plistlib.dumps(PFCTL_JOB))
    assert plutil("-convert", "binary1", "job.plist").returncode == 0
    assert path.read_bytes().startswith(b"bplist00")
    assert plistlib.loads(path.read_bytes()) == PFCTL_JOB

    result = plutil("-convert", "json", "-o", "-", "job.plist")
    assert result.returncode == 0
    assert result.stdout_text == ('{"Label":"com.apple.pfctl","ProgramArguments":["pfctl","-f","\\/etc\\/pf.conf"],'
                                  '"RunAtLoad":true}')
    assert json.loads(result.stdout_text) == PFCTL_JOB

    assert plutil("-convert", "json", "-e", "json", "job.plist").returncode == 0
    assert json.loads((tmp_path / "job.json").read_text()) == PFCTL_JOB
    assert plutil("-convert", "xml1", "-o", "back.plist", "job.json").returncode == 0
    back = (tmp_path / "back.plist").read_bytes()
    assert back.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC')
    assert plistlib.loads(back) == PFCTL_JOB


def test_convert_errors(plutil, tmp_path):
    write(tmp_path, "dated.plist", plistlib.dumps({"when": datetime.datetime(2024, 1, 2, 3, 4, 5)}))
    result = plutil("-convert", "json", "dated.plist")
    assert (result.returncode, result.stderr_text) == (
        1, "dated.plist: invalid object in plist for destination format\n")
    write(tmp_path, "junk.txt", b"not a plist")
    result = plutil("-convert", "xml1", "junk.txt")
    assert result.returncode == 1
    assert result.stderr_text.startswith(
        "junk.txt: Property List error: Unexpected character n at line 1 / JSON error:")
    assert (tmp_path / "junk.txt").read_bytes() == b"not a plist"
    result = plutil("-convert", "yaml", "junk.txt")
    assert (result.returncode, result.stderr_text) == (
        1, "unrecognized format yaml\nformat should be one of: xml1 binary1 json\n")


def test_print_extract_type(plutil, tmp_path):
    write(tmp_path, "job.plist", plistlib.dumps({**PFCTL_JOB, "Nice": -5, "Blob": b"\x01\x02"}))
    result = plutil("-p", "job.plist")
    assert result.stdout_text == (
        '{\n  "Blob" => {length = 2, bytes = 0x0102}\n  "Label" => "com.apple.pfctl"\n  "Nice" => -5\n'
        '  "ProgramArguments" => [\n    0 => "pfctl"\n    1 => "-f"\n    2 => "/etc/pf.conf"\n  ]\n'
        '  "RunAtLoad" => true\n}\n')
    assert plutil("-extract", "Label", "raw", "job.plist").stdout_text == "com.apple.pfctl\n"
    assert plutil("-extract", "ProgramArguments.2", "raw", "-n", "job.plist").stdout_text == "/etc/pf.conf"
    assert plutil("-extract", "ProgramArguments", "raw", "job.plist").stdout_text == "3\n"
    assert plutil("-extract", "RunAtLoad", "raw", "job.plist").stdout_text == "true\n"
    result = plutil("-extract", "Nope", "raw", "job.plist")
    assert result.returncode == 1
    assert "No value at that key path or invalid key path: Nope" in result.stderr_text
    result = plutil("-extract", "ProgramArguments", "json", "-o", "-", "job.plist")
    assert json.loads(result.stdout_text) == ["pfctl", "-f", "/etc/pf.conf"]
    assert plutil("-type", "Nice", "job.plist").stdout_text == "integer\n"


def test_insert_replace_remove_keep_the_format(plutil, tmp_path):
    path = write(tmp_path, "job.plist", plistlib.dumps(PFCTL_JOB, fmt=plistlib.FMT_BINARY))
    assert plutil("-insert", "KeepAlive", "-bool", "YES", "job.plist").returncode == 0
    assert plutil("-replace", "ProgramArguments.2", "-string", "/etc/pf.other", "job.plist").returncode == 0
    assert plutil("-insert", "ProgramArguments", "-string", "-q", "-append", "job.plist").returncode == 0
    assert plutil("-remove", "RunAtLoad", "job.plist").returncode == 0
    assert plutil("-insert", "Env", "-json", '{"A": "1"}', "job.plist").returncode == 0
    assert path.read_bytes().startswith(b"bplist00")
    assert plistlib.loads(path.read_bytes()) == {
        "Label": "com.apple.pfctl", "ProgramArguments": ["pfctl", "-f", "/etc/pf.other", "-q"], "KeepAlive": True,
        "Env": {"A": "1"}}
    result = plutil("-insert", "Label", "-string", "x", "job.plist")
    assert result.returncode == 1
    assert plistlib.loads(path.read_bytes())["Label"] == "com.apple.pfctl"
    assert plutil("-remove", "Nope", "job.plist").returncode == 1


def test_create_and_stdin(plutil, tmp_path):
    assert plutil("-create", "xml1", "new.plist").returncode == 0
    assert plistlib.loads((tmp_path / "new.plist").read_bytes()) == {}
    result = plutil("-lint", "-", stdin=plistlib.dumps(PFCTL_JOB))
    assert result.stdout_text == "-: OK\n"


def test_usage_errors(plutil):
    result = plutil()
    assert (result.returncode, result.stderr_text) == (1, "No files specified.\n")
    result = plutil("-bogus", "x.plist")
    assert result.returncode == 1 and result.stderr_text.startswith("unrecognized option: -bogus\n")
    result = plutil("-help")
    assert result.returncode == 0 and result.stdout_text.startswith("plutil: [command_option] [other_options] file...")
    result = plutil("-convert", "objc", "x.plist")
    assert (result.returncode, result.stderr_text) == (
        1, "pfguard-lab: plutil: -convert objc is not supported by the lab\n")
