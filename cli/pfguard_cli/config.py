# SPDX-License-Identifier: GPL-3.0-or-later
"""Which ansible.cfg is in effect and which inventory a run uses, found the way ansible-core finds them.

ansible.cfg: $ANSIBLE_CONFIG (a file, or a directory holding ansible.cfg), then ./ansible.cfg unless the
working directory is world-writable, then ~/.ansible.cfg, then /etc/ansible/ansible.cfg; the first that
exists and is readable wins (ansible-core's config/manager.py, find_ini_config_file).

Inventory: `-i` (repeatable), else $ANSIBLE_INVENTORY, else `inventory` in [defaults] of that ansible.cfg,
else /etc/ansible/hosts (DEFAULT_HOST_LIST in ansible-core's config/base.yml). The last two are
comma-separated lists; a relative path is taken from the ansible.cfg's directory when it comes from
the file and from the working directory otherwise, as ansible-core resolves `pathlist` settings.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

SYSTEM_CONFIG = "/etc/ansible/ansible.cfg"
DEFAULT_INVENTORY = "/etc/ansible/hosts"
_VAR = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")


class InventoryError(Exception):
    """No inventory, or one that names something that does not exist; the message says which."""


@dataclass(frozen=True)
class Inventory:
    sources: tuple[str, ...]
    origin: str  # where they came from, for messages: "-i", "ANSIBLE_INVENTORY", the cfg path, "default"


def find_config(env: dict[str, str], cwd: str, home: str) -> str | None:
    """The ansible.cfg ansible-core would read, as an absolute path, or None."""
    candidates = []
    from_env = env.get("ANSIBLE_CONFIG")
    if from_env is not None:
        path = _resolve(from_env, cwd, env, home)
        candidates.append(os.path.join(path, "ansible.cfg") if os.path.isdir(path) else path)
    try:
        if not os.stat(cwd).st_mode & stat.S_IWOTH:
            candidates.append(os.path.join(cwd, "ansible.cfg"))
    except OSError:
        pass
    candidates += [os.path.join(home, ".ansible.cfg"), SYSTEM_CONFIG]
    for path in candidates:
        if os.path.exists(path) and os.access(path, os.R_OK):
            return os.path.abspath(path)
    return None


def config_inventory(config: str) -> str | None:
    """`inventory` of [defaults] in an ansible.cfg, as ansible-core reads it (raw), or None."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    try:
        parser.read(config, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read {config}: {exc}") from None
    # Taken as it is written: ansible-core unquotes string settings only, not path lists like this one.
    return parser.get("defaults", "inventory", raw=True, fallback=None)


def find_inventory(cli: list[str], env: dict[str, str], cwd: str, home: str, config: str | None) -> Inventory:
    """The inventory sources of a run; raises InventoryError when there is none or one does not exist."""
    if cli:
        inventory = Inventory(tuple(_resolve(source, cwd, env, home) if not _host_list(source) else source
                                    for source in cli), "-i")  # fmt: skip
    elif env.get("ANSIBLE_INVENTORY", "").strip():
        inventory = Inventory(_pathlist(env["ANSIBLE_INVENTORY"], cwd, env, home), "ANSIBLE_INVENTORY")
    else:
        configured = config_inventory(config) if config else None
        if configured is not None and configured.strip():
            inventory = Inventory(_pathlist(configured, os.path.dirname(config), env, home), config)
        elif os.path.exists(DEFAULT_INVENTORY):
            inventory = Inventory((DEFAULT_INVENTORY,), "default")
        else:
            raise InventoryError(
                "no inventory: pass -i INVENTORY, set ANSIBLE_INVENTORY, or set inventory in [defaults] of "
                + (f"the ansible.cfg in effect ({config})" if config else "an ansible.cfg (none is in effect)")
                + f"; {DEFAULT_INVENTORY} does not exist either"
            )
    missing = [source for source in inventory.sources if not _host_list(source) and not os.path.exists(source)]
    if missing:
        raise InventoryError(f"inventory {', '.join(missing)} (from {inventory.origin}) does not exist")
    return inventory


def _host_list(source: str) -> bool:
    # ansible's host_list inventory plugin: "mac1,mac2," is a list of hosts, not a path.
    return "," in source and not os.path.exists(source)


def _pathlist(value: str, basedir: str, env: dict[str, str], home: str) -> tuple[str, ...]:
    return tuple(_resolve(part.strip(), basedir, env, home) for part in value.split(",") if part.strip())


def _resolve(path: str, basedir: str, env: dict[str, str], home: str) -> str:
    """~ and $VARS expanded, made absolute against basedir, normalised (ansible's unfrackpath, follow=False)."""
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    path = _expandvars(path, env)
    return os.path.normpath(os.path.join(basedir, path))


def _expandvars(path: str, env: dict[str, str]) -> str:
    """os.path.expandvars against the run's environment: $NAME and ${NAME}, unknown names left as they are."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return _VAR.sub(value, path)


def home_dir(env: dict[str, str]) -> str:
    return env.get("HOME") or str(Path.home())
