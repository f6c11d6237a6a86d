# SPDX-License-Identifier: GPL-3.0-or-later
"""Which ansible.cfg and inventory `pfguard` uses: the same as ansible-core, checked against
`ansible-config dump` run with the same environment and working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pfguard_cli import config

ANSIBLE_CONFIG_CMD = str(Path(sys.executable).with_name("ansible-config"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home and no system ansible.cfg or inventory, so only what a test makes is found."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(config, "SYSTEM_CONFIG", str(tmp_path / "etc" / "ansible.cfg"))
    monkeypatch.setattr(config, "DEFAULT_INVENTORY", str(tmp_path / "etc" / "hosts"))
    return home


def ansible_says(env: dict[str, str], cwd: Path) -> tuple[str | None, list[str]]:
    """(CONFIG_FILE, DEFAULT_HOST_LIST) as ansible-core itself resolves them."""
    full = {"PATH": os.environ["PATH"], **env}
    dump = subprocess.run([ANSIBLE_CONFIG_CMD, "dump", "--format", "json"], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    values = {item["name"]: item["value"] for item in json.loads(dump.stdout) if "name" in item}
    return values["CONFIG_FILE"], values["DEFAULT_HOST_LIST"]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def layout(tmp_path: Path, case: str) -> tuple[dict[str, str], Path]:
    """A directory tree for each way ansible finds its config and inventory; returns (env, cwd)."""
    home = tmp_path / "home"
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    write(project / "inventory" / "hosts.yml")
    write(elsewhere / "inv.yml")
    write(elsewhere / "second.yml")
    env = {"HOME": str(home)}
    if case == "cwd config, relative inventory":
        write(project / "ansible.cfg", "[defaults]\ninventory = ./inventory/hosts.yml\n")
    elif case == "ANSIBLE_CONFIG elsewhere, relative to it":
        write(elsewhere / "ansible.cfg", "[defaults]\ninventory = inv.yml, second.yml ; two sources\n")
        env["ANSIBLE_CONFIG"] = str(elsewhere / "ansible.cfg")
    elif case == "ANSIBLE_CONFIG a directory":
        write(elsewhere / "ansible.cfg", "[defaults]\ninventory = inv.yml\n")
        env["ANSIBLE_CONFIG"] = str(elsewhere)
    elif case == "ANSIBLE_INVENTORY relative to the cwd":
        write(project / "ansible.cfg", "[defaults]\ninventory = ./inventory/hosts.yml\n")
        env["ANSIBLE_INVENTORY"] = "inventory/hosts.yml,../elsewhere/inv.yml"
    elif case == "home config with ~ and $VAR":
        write(home / ".ansible.cfg", "[defaults]\ninventory = ~/../elsewhere/inv.yml,$PFG_DIR/second.yml\n")
        env["PFG_DIR"] = str(elsewhere)
    elif case == "world-writable cwd is ignored":
        write(project / "ansible.cfg", "[defaults]\ninventory = ./inventory/hosts.yml\n")
        write(home / ".ansible.cfg", "[defaults]\ninventory = ../elsewhere/inv.yml\n")
        project.chmod(0o777)
    return env, project


CASES = [
    "cwd config, relative inventory",
    "ANSIBLE_CONFIG elsewhere, relative to it",
    "ANSIBLE_CONFIG a directory",
    "ANSIBLE_INVENTORY relative to the cwd",
    "home config with ~ and $VAR",
    "world-writable cwd is ignored",
]


@pytest.mark.parametrize("case", CASES)
def test_config_and_inventory_are_what_ansible_finds(tmp_path, home, case):
    env, cwd = layout(tmp_path, case)
    found = config.find_config(env, str(cwd), env["HOME"])
    inventory = config.find_inventory([], env, str(cwd), env["HOME"], found)
    expected_config, expected_inventory = ansible_says(env, cwd)
    assert found == expected_config
    assert list(inventory.sources) == expected_inventory
    assert all(Path(source).exists() for source in inventory.sources)


def test_dash_i_wins_and_is_taken_from_the_cwd(tmp_path, home):
    env, cwd = layout(tmp_path, "ANSIBLE_INVENTORY relative to the cwd")
    cfg = config.find_config(env, str(cwd), env["HOME"])
    inventory = config.find_inventory(["../elsewhere/second.yml", "mac1,mac2,"], env, str(cwd), env["HOME"], cfg)
    assert inventory.sources == (str(tmp_path / "elsewhere" / "second.yml"), "mac1,mac2,")
    assert inventory.origin == "-i"


def test_an_inventory_that_does_not_exist_is_named(tmp_path, home):
    env, cwd = layout(tmp_path, "cwd config, relative inventory")
    with pytest.raises(config.InventoryError, match=r"inventory .*/project/nope\.yml \(from -i\) does not exist"):
        config.find_inventory(["nope.yml"], env, str(cwd), env["HOME"], None)
    (cwd / "inventory" / "hosts.yml").unlink()
    cfg = config.find_config(env, str(cwd), env["HOME"])
    with pytest.raises(config.InventoryError, match=r"inventory/hosts\.yml \(from .*/project/ansible\.cfg\)"):
        config.find_inventory([], env, str(cwd), env["HOME"], cfg)


def test_no_inventory_at_all_says_where_one_would_come_from(tmp_path, home):
    cwd = tmp_path / "bare"
    cwd.mkdir()
    env = {"HOME": str(home)}
    assert config.find_config(env, str(cwd), str(home)) is None
    with pytest.raises(config.InventoryError) as refused:
        config.find_inventory([], env, str(cwd), str(home), None)
    assert "no inventory: pass -i INVENTORY, set ANSIBLE_INVENTORY" in str(refused.value)
    assert "(none is in effect)" in str(refused.value)
    # A config without `inventory` is named in the message.
    write(cwd / "ansible.cfg", "[defaults]\nforks = 5\n")
    cfg = config.find_config(env, str(cwd), str(home))
    with pytest.raises(config.InventoryError, match=r"the ansible\.cfg in effect \(.*/bare/ansible\.cfg\)"):
        config.find_inventory([], env, str(cwd), str(home), cfg)


def test_the_system_inventory_is_the_last_resort(tmp_path, home):
    write(Path(config.DEFAULT_INVENTORY), "mac1\n")
    inventory = config.find_inventory([], {"HOME": str(home)}, str(tmp_path), str(home), None)
    assert inventory == config.Inventory((config.DEFAULT_INVENTORY,), "default")


def test_an_unreadable_config_is_refused_not_a_traceback(tmp_path, home):
    cfg = write(tmp_path / "ansible.cfg", "no section header\n")
    with pytest.raises(config.InventoryError, match="cannot read"):
        config.find_inventory([], {"HOME": str(home)}, str(tmp_path), str(home), str(cfg))
