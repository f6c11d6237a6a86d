# SPDX-License-Identifier: GPL-3.0-or-later
"""The Galaxy artifact: what it holds, and that the installed collection works outside the checkout.

Every list (plays, modules, filters, roles) is read from the checkout's tree, so a new play, plugin
or role is checked without touching this file.
"""

from __future__ import annotations

import ast
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from collection_fixtures import BIN, FQCN, REPO, galaxy_meta, run

pytest_plugins = ["collection_fixtures"]

# What an installed collection holds at its root; anything else is checkout tooling.
SHIPPED_TOP = {
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md", "requirements.yml",
    "meta", "plugins", "roles", "playbooks", "docs", "changelogs", "inventory", "tests",
}
# Only the tests that run from an installed collection (ansible-test units and sanity).
SHIPPED_TESTS = {"tests/config.yml", "tests/unit", "tests/sanity"}
SHIPPED_CHANGELOGS = {"changelogs/changelog.yaml", "changelogs/config.yaml"}
# plugins/ directories whose files ansible-doc documents, with ansible-doc's plugin type; Jinja2
# plugin files hold several plugins each (FilterModule.filters(), TestModule.tests()).
DOC_TYPES = {"modules": "module", "filter": "filter", "test": "test", "lookup": "lookup", "callback": "callback",
             "inventory": "inventory", "connection": "connection", "become": "become", "cache": "cache",
             "vars": "vars"}
JINJA2_CLASSES = {"filter": ("FilterModule", "filters"), "test": ("TestModule", "tests")}
# Code shared by other plugins, or the module's own action plugin: no documentation of its own.
UNDOCUMENTED_DIRS = {"action", "doc_fragments", "module_utils", "plugin_utils"}


def tree_files(*tops: str) -> list[str]:
    """Files of the checkout under tops that git tracks or would track (not ignored), still on disk."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *tops],
                         cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    return sorted({p for p in out.split("\0") if p and (REPO / p).is_file()})


def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def jinja2_plugin_names(path: Path, class_name: str, method: str) -> list[str]:
    """The keys of the dict literal that class_name.method() returns in path."""
    tree = ast.parse(path.read_text(), str(path))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method):
            returns = [n.value for n in ast.walk(fn) if isinstance(n, ast.Return)]
            if len(returns) == 1 and isinstance(returns[0], ast.Dict):
                keys = returns[0].keys
                if all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
                    return [k.value for k in keys]
    pytest.fail(f"{path.relative_to(REPO)}: {class_name}.{method}() does not return a dict literal with string "
                "keys; this test reads plugin names from it")


def documented_plugins() -> dict[str, list[str]]:
    """{ansible-doc type: [FQCN, ...]} for every plugin in the checkout's plugins/."""
    plugins: dict[str, list[str]] = {}
    for directory in sorted(p for p in (REPO / "plugins").iterdir() if p.is_dir() and p.name != "__pycache__"):
        if directory.name in UNDOCUMENTED_DIRS:
            continue
        assert directory.name in DOC_TYPES, f"plugins/{directory.name}: unknown plugin directory for this test"
        names: set[str] = set()
        for source in sorted(directory.glob("*.py")):
            if source.name == "__init__.py":
                continue
            if directory.name in JINJA2_CLASSES:
                names.update(jinja2_plugin_names(source, *JINJA2_CLASSES[directory.name]))
            else:
                names.add(source.stem)
        if directory.name in JINJA2_CLASSES:
            # A YAML file documents a Jinja2 plugin defined in some .py file; one for no plugin is stray.
            stray = sorted(p.name for p in directory.glob("*.y*ml") if p.stem not in names)
            assert not stray, f"plugins/{directory.name}: documentation for no plugin: {stray}"
        plugins[DOC_TYPES[directory.name]] = sorted(f"{FQCN}.{n}" for n in names)
    return plugins


PLAYS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
PLUGINS = documented_plugins()


def test_tree_lists_are_not_empty():
    assert PLAYS and ROLES and PLUGINS.get("module") and PLUGINS.get("filter"), (PLAYS, ROLES, PLUGINS)


def test_artifact_holds_license_and_no_checkout_tooling(installed_collection):
    names = members(installed_collection.tarball)
    top = {n.split("/")[0] for n in names}
    assert top <= SHIPPED_TOP, f"not collection content: {sorted(top - SHIPPED_TOP)}"
    assert {"LICENSE", "README.md", "requirements.yml", "meta/runtime.yml"} <= set(names)
    assert "GNU GENERAL PUBLIC LICENSE" in (installed_collection.root / "LICENSE").read_text().splitlines()[0]
    assert (installed_collection.root / "LICENSE").read_bytes() == (REPO / "LICENSE").read_bytes()
    tests = {"/".join(n.split("/")[:2]) for n in names if n.startswith("tests/")} - {"tests"}
    assert tests <= SHIPPED_TESTS, f"tests that need the checkout: {sorted(tests - SHIPPED_TESTS)}"
    changelogs = {n for n in names if n.startswith("changelogs/")}
    assert changelogs <= SHIPPED_CHANGELOGS, sorted(changelogs - SHIPPED_CHANGELOGS)
    dotted = [n for n in names if any(part.startswith(".") for part in n.split("/"))]
    assert not dotted, dotted
    links = [n for n, m in names.items() if m.issym() or m.islnk()]
    assert not links, links


def test_artifact_holds_nothing_git_ignores(installed_collection):
    files = [n for n, m in members(installed_collection.tarball).items()
             if m.isfile() and n not in ("MANIFEST.json", "FILES.json")]
    proc = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(files),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout == "", f"ignored files in the artifact:\n{proc.stdout}"


def test_artifact_holds_every_file_of_the_content(installed_collection):
    names = set(members(installed_collection.tarball))
    content = tree_files("meta", "plugins", "roles", "playbooks", "docs")
    missing = [p for p in content if p not in names]
    assert content and not missing, f"left out of the artifact: {missing}"


def test_dependencies_agree(installed_collection):
    with tarfile.open(installed_collection.tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    dependencies = manifest["collection_info"]["dependencies"]
    assert dependencies == galaxy_meta()["dependencies"]
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert {r["name"]: r["version"] for r in requirements} == dependencies
    listed = json.loads(installed_collection.run(
        ["ansible-galaxy", "collection", "list", "--format", "json", "community.general"]).stdout)
    versions = [v["version"] for path in listed.values() for v in path.values()]
    floor = dependencies["community.general"].removeprefix(">=")
    assert versions and all(tuple(map(int, v.split("."))) >= tuple(map(int, floor.split("."))) for v in versions)


def test_installed_collection_has_no_link_and_no_loop(installed_collection):
    links = [str(p) for p in installed_collection.root.rglob("*") if p.is_symlink()]
    assert not links, links
    proc = subprocess.run(["find", "-L", str(installed_collection.root)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "loop" not in proc.stderr, proc.stderr
    assert str(installed_collection.root / "meta" / "runtime.yml") in proc.stdout.splitlines()


def test_no_ansible_cfg_in_play(installed_collection):
    out = installed_collection.run(["ansible", "--version"]).stdout
    assert "config file = None" in out, out


@pytest.mark.parametrize("play", PLAYS)
def test_play_syntax_from_the_installed_collection(installed_collection, play):
    out = installed_collection.run(["ansible-playbook", "--syntax-check", f"{FQCN}.{play}"]).stdout
    assert f"playbook: {installed_collection.root / 'playbooks' / (play + '.yml')}" in out, out


@pytest.mark.parametrize("plugin_type", sorted(PLUGINS))
def test_plugin_docs_from_the_installed_collection(installed_collection, plugin_type):
    names = PLUGINS[plugin_type]
    proc = installed_collection.run(["ansible-doc", "--json", "-t", plugin_type, *names])
    docs = json.loads(proc.stdout)
    assert sorted(docs) == names, f"no documentation for {sorted(set(names) - set(docs))}\n{proc.stderr}"
    for name, entry in docs.items():
        assert entry["doc"]["short_description"], name
        filename = Path(entry["doc"]["filename"])
        assert filename.is_relative_to(installed_collection.root), (name, filename)
    listed = json.loads(installed_collection.run(["ansible-doc", "--json", "-t", plugin_type, "-l", FQCN]).stdout)
    assert sorted(listed) == names
    assert "[WARNING]" not in proc.stderr, proc.stderr


def test_role_docs_from_the_installed_collection(installed_collection):
    names = [f"{FQCN}.{r}" for r in ROLES]
    proc = installed_collection.run(["ansible-doc", "--json", "-t", "role", *names])
    docs = json.loads(proc.stdout)
    assert sorted(docs) == names, f"no documentation for {sorted(set(names) - set(docs))}\n{proc.stderr}"
    for name, entry in docs.items():
        assert entry["entry_points"]["main"]["short_description"], name
        assert Path(entry["path"]).is_relative_to(installed_collection.root), (name, entry["path"])
    assert "[WARNING]" not in proc.stderr, proc.stderr


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path):
    """CHANGELOG.md is antsibull-changelog's output for changelogs/changelog.yaml, not edited by hand."""
    (tmp_path / "changelogs").mkdir()
    for name in ("galaxy.yml", "changelogs/config.yaml", "changelogs/changelog.yaml"):
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    run([str(BIN / "antsibull-changelog"), "generate"], cwd=tmp_path)
    assert (tmp_path / "CHANGELOG.md").read_text() == (REPO / "CHANGELOG.md").read_text()
