# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos as a user gets it: the Galaxy artifact built from this checkout and installed with
`ansible-galaxy collection install`, used from a directory that is not the checkout.

Test modules load this as a plugin: `pytest_plugins = ["collection_fixtures"]` (tests/packaging must be
on pytest's pythonpath). The session fixture `installed_collection` builds and installs once per
pytest session and returns an `InstalledCollection`; run Ansible with `.run([...])` or with
`env=.env, cwd=.workdir` so that neither the checkout's ansible.cfg nor its collections/ symlink is
in play.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAMESPACE, NAME = "pfguard", "macos"
FQCN = f"{NAMESPACE}.{NAME}"


def galaxy_meta() -> dict:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())


def site_packages_collections() -> Path:
    """The directory holding ansible_collections/ of the `ansible` package in this virtualenv, where
    community.general is already installed (the tests never download)."""
    import ansible_collections.community.general as general  # the `ansible` package's copy

    return Path(general.__path__[0]).parents[2]


def run(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def build_collection(out_dir: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout into out_dir; the tarball's path."""
    meta = galaxy_meta()
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out_dir), str(REPO)])
    tarball = out_dir / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    assert tarball.is_file(), f"no {tarball.name} in {sorted(p.name for p in out_dir.iterdir())}"
    return tarball


def clean_env(collections_path: str | None = None) -> dict:
    """This process's environment without any ANSIBLE_* setting (ANSIBLE_CONFIG included), with the
    virtualenv's bin first on PATH and, if given, ANSIBLE_COLLECTIONS_PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if collections_path is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


@dataclass(frozen=True)
class InstalledCollection:
    tarball: Path
    # Where `ansible-galaxy collection install -p` put it: <install_dir>/ansible_collections/pfguard/macos
    install_dir: Path
    # ANSIBLE_COLLECTIONS_PATH value: install_dir, then the virtualenv's community.general
    collections_path: str
    # An empty directory without ansible.cfg, to run Ansible from
    workdir: Path

    @property
    def root(self) -> Path:
        return self.install_dir / "ansible_collections" / NAMESPACE / NAME

    @property
    def env(self) -> dict:
        return clean_env(self.collections_path)

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """Run argv (bare Ansible command names resolve to this virtualenv) from workdir; fail the test
        unless it exits 0."""
        return run(argv, env=self.env, cwd=self.workdir, timeout=timeout)


def install_collection(tarball: Path, base: Path) -> InstalledCollection:
    """Install tarball under base/collections, offline: the dependency community.general is resolved
    from the virtualenv's copy, which ansible-galaxy finds already installed."""
    install_dir, workdir = base / "collections", base / "work"
    workdir.mkdir(parents=True)
    env = clean_env(f"{install_dir}{os.pathsep}{site_packages_collections()}")
    proc = run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(install_dir), str(tarball)],
        env=env,
        cwd=workdir,
    )
    assert f"{FQCN}:{galaxy_meta()['version']} was installed successfully" in proc.stdout, proc.stdout
    return InstalledCollection(tarball, install_dir, env["ANSIBLE_COLLECTIONS_PATH"], workdir)


@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory) -> InstalledCollection:
    base = tmp_path_factory.mktemp("pfguard-collection")
    tarball = build_collection(base / "build")
    with tarfile.open(tarball) as tar:
        links = [m.name for m in tar.getmembers() if m.issym() or m.islnk()]
    assert not links, f"the artifact holds links: {links}"
    return install_collection(tarball, base)
