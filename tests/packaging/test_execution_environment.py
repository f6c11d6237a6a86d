# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml (ansible-builder schema version 3) and ansible-navigator.yml (docs/awx.md).

`ansible-builder create` makes the build context from a copy of the definition, requirements.yml and the
collection's Galaxy artifact in dist/ (the layout docs/awx.md has the user make); the context must hold the
Containerfile that installs ansible-core 2.21, ansible-runner, requirements.yml and then that artifact,
with every file it names. The Containerfile's own install step is then run (paths moved into a temporary
directory, community.general already installed as the galaxy stage leaves it) and the six plays are found in
what it installed. Building the image needs a container engine and a registry, which the tests do not have.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from collection_fixtures import REPO, clean_env, galaxy_meta, run, site_packages_collections
from packaging.requirements import Requirement

pytest_plugins = ["collection_fixtures"]

BIN = Path(sys.executable).parent
PLAYS = ("site", "ban", "unban", "sync", "doctor", "report")
BUILD = "/build/"  # where the galaxy stage copies the context's _build directory (COPY _build /build)
COLLECTIONS = "/usr/share/ansible/collections"  # where the galaxy stage installs collections


def definition() -> dict:
    return yaml.safe_load((REPO / "execution-environment.yml").read_text())


@pytest.fixture(scope="module")
def context(installed_collection, tmp_path_factory) -> Path:
    """`ansible-builder create` from the repository's definition, with the built collection in dist/."""
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.yml"):
        shutil.copy(REPO / name, work / name)
    (work / "dist").mkdir()
    shutil.copy(installed_collection.tarball, work / "dist")
    run([str(BIN / "ansible-builder"), "create", "-f", str(work / "execution-environment.yml"),
         "-c", str(work / "context"), "--output-filename", "Containerfile"], cwd=work)  # fmt: skip
    return work / "context"


def containerfile(context: Path) -> list[str]:
    return (context / "Containerfile").read_text().splitlines()


def test_definition_pins_ansible_core_2_21_and_ansible_runner():
    ee = definition()
    assert ee["version"] == 3
    core = Requirement(ee["dependencies"]["ansible_core"]["package_pip"])
    assert core.name == "ansible-core"
    assert core.specifier.contains("2.21.5") and not core.specifier.contains("2.20.9")
    assert not core.specifier.contains("2.22.0")
    assert Requirement(ee["dependencies"]["ansible_runner"]["package_pip"]).name == "ansible-runner"
    assert ee["dependencies"]["galaxy"] == "requirements.yml"


def test_containerfile_installs_core_runner_requirements_then_the_collection(context):
    ee, lines = definition(), containerfile(context)
    assert f'ARG EE_BASE_IMAGE="{ee["images"]["base_image"]["name"]}"' in lines
    refs = next(line for line in lines if line.startswith("ARG ANSIBLE_INSTALL_REFS="))
    for dependency in ("ansible_core", "ansible_runner"):
        assert ee["dependencies"][dependency]["package_pip"] in refs
    requirements_step = next(i for i, line in enumerate(lines)
                             if "collection install" in line and "-r requirements.yml" in line)  # fmt: skip
    collection_step = next(i for i, line in enumerate(lines) if "pfguard-macos-*.tar.gz" in line)
    assert requirements_step < collection_step  # its dependencies are there before it is installed
    assert f"--collections-path {COLLECTIONS}" in lines[collection_step]
    # The final image takes what the galaxy stage installed.
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in lines[collection_step:]
    assert lines[-2:] == ['ENTRYPOINT ["/opt/builder/bin/entrypoint", "dumb-init"]', 'CMD ["bash"]']


def test_build_context_holds_requirements_and_the_collection(context):
    build = context / "_build"
    assert (build / "requirements.yml").read_text() == (REPO / "requirements.yml").read_text()
    required = {entry["name"] for entry in yaml.safe_load((build / "requirements.yml").read_text())["collections"]}
    meta = galaxy_meta()
    assert set(meta.get("dependencies") or {}) <= required  # every dependency of the collection is installed first
    assert "openssh-clients [platform:rpm]" in (build / "bindep.txt").read_text().splitlines()

    tarballs = sorted((build / "pfguard").iterdir())
    assert [path.name for path in tarballs] == [f"pfguard-macos-{meta['version']}.tar.gz"]
    # The Containerfile's glob, where the galaxy stage sees the context, matches exactly that file.
    step = next(line for line in containerfile(context) if "pfguard-macos-*.tar.gz" in line)
    pattern = next(word for word in step.split() if word.endswith("pfguard-macos-*.tar.gz;"))[:-1]
    assert fnmatch.fnmatch(BUILD + str(tarballs[0].relative_to(build)), pattern)
    with tarfile.open(tarballs[0]) as artifact:
        names = set(artifact.getnames())
        manifest = json.load(artifact.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("pfguard", "macos", meta["version"])
    assert {f"playbooks/{play}.yml" for play in PLAYS} | {"plugins/modules/pfctl_table.py"} <= names
    assert not {name for name in names if name.split("/")[0] in ("lab", "cli", ".venv", "molecule", "collections")}


def test_the_containerfile_install_step_installs_a_collection_whose_plays_run(context, tmp_path):
    """The collection step exactly as the Containerfile has it, with /build and the collections path moved
    into tmp_path; community.general is there first, as requirements.yml leaves it in the galaxy stage."""
    step = next(line for line in containerfile(context) if "pfguard-macos-*.tar.gz" in line)
    assert step.startswith("RUN ")
    collections = tmp_path / "collections"
    general = collections / "ansible_collections" / "community" / "general"
    general.parent.mkdir(parents=True)
    general.symlink_to(site_packages_collections() / "ansible_collections" / "community" / "general")
    script = step[len("RUN "):].replace(BUILD, f"{context / '_build'}/").replace(COLLECTIONS, str(collections))
    env = clean_env(str(collections))
    env["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"] = ""
    run(["/bin/sh", "-c", script], env=env, cwd=tmp_path, timeout=300)
    assert (collections / "ansible_collections" / "pfguard" / "macos" / "MANIFEST.json").is_file()
    workdir = tmp_path / "work"  # no ansible.cfg: only the installed collection can be found
    workdir.mkdir()
    for play in PLAYS:
        checked = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                                  f"pfguard.macos.{play}"], cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
        assert checked.returncode == 0, f"{play}:\n{checked.stdout}\n{checked.stderr}"


def test_navigator_settings_are_valid_and_use_this_execution_environment():
    import ansiblelint.schemas

    settings = yaml.safe_load((REPO / "ansible-navigator.yml").read_text())
    schema_path = Path(ansiblelint.schemas.__file__).with_name("ansible-navigator-config.json")
    jsonschema.validate(settings, json.loads(schema_path.read_text()))
    navigator = settings["ansible-navigator"]
    assert navigator["execution-environment"]["enabled"] is True
    assert navigator["execution-environment"]["image"] in definition()["options"]["tags"]
    assert navigator["mode"] == "stdout"
    assert navigator["ansible-runner"]["job-events"] is True
