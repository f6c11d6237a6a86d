# SPDX-License-Identifier: GPL-3.0-or-later
"""The fail2ban releases the lab's emulated Homebrew can pour, and the cache that holds them.

- 1.0.2 is this machine's Debian package (`fail2ban` among the Makefile's APT_PACKAGES): code in
  /usr/lib/python3/dist-packages, executables in /usr/bin, configuration in /etc/fail2ban (only read).
- 1.1.0 is what Homebrew pours today (docs/reference/fail2ban.md#homebrew-packaging). Its code comes from
  Debian's `fail2ban_1.1.0-8_all.deb` (`dpkg-deb -x`, run with PYTHONPATH at its dist-packages) and its
  configuration from the upstream 1.1.0 source, Debian's `fail2ban_1.1.0.orig.tar.gz` (`config/`): what
  Homebrew's formula installs. Debian's own /etc/fail2ban of 1.1.0-8 carries Debian patches (its sshd
  filter knows `sshd-session`, upstream 1.1.0's does not), so a Mac's configuration is the upstream one.

Both files are pinned by SHA256 (the orig tarball's also appears in the signed fail2ban_1.1.0-8.dsc) and
fetched once from deb.debian.org into `$PFGUARD_LAB_CACHE` (default /var/cache/pfguard-lab), never through
the machine's apt sources. `make deps` runs `python3 lab/pfguard_lab/fail2ban_dist.py fetch`; the brew
emulator's provisioning fetches what a Mac needs if it is still missing. Inside a lab host the cache is
seen through the overlay's lower layer at the same path, read only in effect.

Stdlib only: `make deps` runs this file with the system Python before the virtualenv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = "/var/cache/pfguard-lab"
POOL = "http://deb.debian.org/debian/pool/main/f/fail2ban/"
DOWNLOAD_TIMEOUT = 120  # seconds per file
DATA_DIR = Path(__file__).resolve().parent / "data" / "fail2ban"


@dataclass(frozen=True)
class Download:
    name: str
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return POOL + self.name


@dataclass(frozen=True)
class Release:
    """Where one fail2ban version's code, executables and configuration are on this machine."""

    version: str
    python_path: str | None  # prepended to PYTHONPATH; None: the system Python's own dist-packages
    bin_dir: Path
    config_dir: Path  # the tree the formula copies into $PREFIX/etc/fail2ban
    paths_osx: Path  # the release's config/paths-osx.conf (Debian's packages drop it)

    def executable(self, name: str) -> Path:
        return self.bin_dir / name

    def missing(self) -> list[str]:
        """What is not there yet (empty when the release can be poured)."""
        wanted = [self.executable(name) for name in ("fail2ban-client", "fail2ban-server", "fail2ban-regex")]
        wanted += [self.config_dir / "jail.conf", self.config_dir / "filter.d/sshd.conf", self.paths_osx]
        if self.python_path is not None:
            wanted.append(Path(self.python_path) / "fail2ban/version.py")
        return [str(path) for path in wanted if not path.exists()]


# Debian's fail2ban 1.1.0-8 (the .deb for the code) and the upstream 1.1.0 source it was built from.
FETCHED = {
    "1.1.0": (
        Download("fail2ban_1.1.0-8_all.deb",
                 "ac35080546f1a1581163b2ebcb9796b08eb4abca3d3643082b76dce505cbd6d8", 466424),
        Download("fail2ban_1.1.0.orig.tar.gz",
                 "474fcc25afdaf929c74329d1e4d24420caabeea1ef2e041a267ce19269570bae", 603854),
    ),
}  # fmt: skip
VERSIONS = ("1.0.2", "1.1.0")
DEFAULT_VERSION = "1.1.0"  # what Homebrew pours today


class DistError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_CACHE") or DEFAULT_CACHE)


def check_version(version: object) -> str:
    if not isinstance(version, str) or version not in VERSIONS:
        raise DistError(f"fail2ban_version {version!r}: the lab has {', '.join(VERSIONS)}")
    return version


def release(version: str) -> Release:
    check_version(version)
    if version == "1.0.2":
        return Release(version, None, Path("/usr/bin"), Path("/etc/fail2ban"), DATA_DIR / "paths-osx.conf")
    base = cache_dir() / f"fail2ban-{version}"
    return Release(
        version,
        str(base / "deb/usr/lib/python3/dist-packages"),
        base / "deb/usr/bin",
        base / "source/config",
        base / "source/config/paths-osx.conf",
    )


def _download(item: Download, directory: Path) -> Path:
    target = directory / item.name
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(item.url, timeout=DOWNLOAD_TIMEOUT) as response, open(target, "wb") as out:
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > item.size:
                    raise DistError(f"{item.url}: more than the expected {item.size} bytes")
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise DistError(f"cannot download {item.url}: {exc}") from exc
    if digest.hexdigest() != item.sha256:
        raise DistError(f"{item.url}: SHA256 {digest.hexdigest()}, expected {item.sha256}")
    return target


def _unpack(version: str, work: Path) -> None:
    deb, orig = FETCHED[version]
    deb_file, orig_file = _download(deb, work), _download(orig, work)
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb_file), str(work / "deb")], check=True, capture_output=True,
                       timeout=120)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise DistError(f"dpkg-deb -x {deb_file}: {exc} {detail.decode(errors='replace')}".strip()) from exc
    prefix = f"fail2ban-{version}/config/"
    with tarfile.open(orig_file) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
        for member in members:
            member.name = "config/" + member.name[len(prefix) :]
        tar.extractall(work / "source", members=members, filter="data")
    deb_file.unlink()
    orig_file.unlink()


def ensure(version: str, log=None) -> Release:
    """The release, fetched into the cache first when it is not there (under a lock: Macs boot in parallel)."""
    wanted = release(version)
    if not wanted.missing():
        return wanted
    if version not in FETCHED:
        raise DistError(f"fail2ban {version} is not installed on this machine: missing {', '.join(wanted.missing())}")
    cache = cache_dir()
    old_umask = os.umask(0o022)
    try:
        cache.mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not wanted.missing():
                return wanted
            base = cache / f"fail2ban-{version}"
            if log:
                log(f"pfguard-lab: fetching fail2ban {version} into {base}")
            work = Path(tempfile.mkdtemp(prefix=f".fail2ban-{version}.", dir=cache))
            try:
                work.chmod(0o755)
                _unpack(version, work)
                if base.exists():
                    shutil.rmtree(base)
                work.rename(base)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(work)
    finally:
        os.umask(old_umask)
    missing = wanted.missing()
    if missing:
        raise DistError(f"fail2ban {version}: the unpacked release lacks {', '.join(missing)}")
    return wanted


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["fetch"] or any(version not in VERSIONS for version in args[1:]):
        sys.stderr.write(f"usage: fail2ban_dist.py fetch [{'|'.join(VERSIONS)} ...]\n")
        return 2
    try:
        for version in args[1:] or VERSIONS:
            found = ensure(version, log=print)
            print(f"fail2ban {version}: {found.bin_dir} ({found.config_dir})")
    except DistError as exc:
        sys.stderr.write(f"pfguard-lab: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
