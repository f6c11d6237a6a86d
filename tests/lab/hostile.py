"""One helper for every hostile-input test: run a module or filter through real `ansible`, assert it
was refused by name with no traceback, and that the watched files and kernel state did not change."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from pfguard_lab.adhoc import run_module


def snapshot(*roots: str | os.PathLike) -> dict[str, tuple]:
    """Every path below `roots` (links not followed) with its type, mode, owner and content digest
    (device numbers for devices), so any change, creation or removal shows up in a comparison."""
    seen: dict[str, tuple] = {}
    for root in roots:
        for directory, dirnames, filenames in os.walk(root, followlinks=False):
            for name in [directory, *(os.path.join(directory, n) for n in dirnames + filenames)]:
                info = os.lstat(name)
                if stat.S_ISREG(info.st_mode):
                    detail = hashlib.sha256(Path(name).read_bytes()).hexdigest()
                elif stat.S_ISLNK(info.st_mode):
                    detail = os.readlink(name)
                elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                    detail = info.st_rdev
                else:
                    detail = None
                seen[name] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, detail)
    return seen


def assert_refused(rc: int, result: dict, *names: str) -> str:
    """The task failed cleanly (no traceback) with a message naming every one of `names`."""
    text = repr(result)
    assert rc != 0 and result.get("failed") is True, result
    assert "Traceback" not in text and "exception" not in result, result
    message = str(result.get("msg", ""))
    for name in names:
        assert name in message, f"{name!r} not named in {message!r}"
    return message


def refused_without_change(module: str, args: dict, names: tuple[str, ...], watched, state=None, env=None) -> str:
    """Run `module` with `args`; assert it is refused naming `names` and that nothing under the
    `watched` paths changed, nor `state()` (e.g. the emulated kernel's tables) when given."""
    before = snapshot(*watched), state() if state else None
    rc, result = run_module(module, args, env=env)
    message = assert_refused(rc, result, *names)
    assert (snapshot(*watched), state() if state else None) == before, f"state changed by {args!r}"
    return message
