# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab Macs are managed as real Macs are: nobody logs in as root; Ansible logs in as the admin user
with the lab's key and becomes root with sudo, under macOS's stock sudoers (the admin's password,
env_reset, so SSH_CONNECTION is gone under become)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pfguard_lab import cli, fleet, host

pytest_plugins = ["lab_fixtures"]

CONTROLLER = "198.51.100.1"
MAC_SSH_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # what sshd gives a macOS session


def ssh(lab, user: str, mac: str, command: str, key: Path | None = None, input_text: str | None = None):
    """`ssh USER@MAC COMMAND` from the controller with one key (default: Ansible's), no agent, no config."""
    key = key or Path(lab.inventory()["all"]["children"]["macs"]["vars"]["ansible_ssh_private_key_file"])
    argv = [
        "ssh", "-F", "/dev/null", "-T", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=5", "-o", "ControlMaster=no", "-o", "ControlPath=none",
        f"{user}@{lab.macs()[mac]['ansible_host']}", command,
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    return subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=30, env=env,
                          stdin=None if input_text is not None else subprocess.DEVNULL)  # fmt: skip


def admin_password(lab) -> str:
    return (lab.dir / "keys" / "admin_password").read_text().strip()


def environment(result: dict) -> dict[str, str]:
    assert result.get("rc") == 0, result
    return dict(line.split("=", 1) for line in result["stdout_lines"] if "=" in line)


# --- login ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mac", ["mac1", "mac2"])
def test_root_cannot_log_in_over_ssh(lab, mac):
    for key in (None, lab.dir / "keys" / "holder_ed25519"):
        refused = ssh(lab, "root", mac, "id -u", key=key)
        assert refused.returncode == 255, refused
        assert "Permission denied" in refused.stderr
        assert refused.stdout == ""
        # The same key logs in as admin: root is refused for being root.
        assert ssh(lab, "admin", mac, "id -un", key=key).stdout == "admin\n"
    sshd = dict(line.split(" ", 1) for line in lab.sh(mac, "sshd -T").splitlines() if " " in line)
    assert sshd["permitrootlogin"] == "no"
    assert lab.exec(mac, "test", "-e", f"{host.ROOT_HOME}/.ssh/authorized_keys").returncode == 1


def test_admin_logs_in_with_the_lab_keys(lab):
    session = ssh(lab, "admin", "mac1", 'id -un; id -gn; id -u; echo "$PATH"; echo "$SSH_CONNECTION"; echo "$HOME"')
    assert session.returncode == 0, session.stderr
    user, group, uid, path, connection, home = session.stdout.splitlines()
    assert (user, group, uid, path, home) == ("admin", "admin", "501", MAC_SSH_PATH, "/Users/admin")
    assert connection.split()[0] == CONTROLLER and connection.split()[2:] == ["198.51.100.11", "22"]
    keys = lab.sh("mac1", "cat /Users/admin/.ssh/authorized_keys").splitlines()
    assert [line.split()[-1] for line in keys] == [host.ANSIBLE_KEY_COMMENT, host.HOLDER_COMMENT]
    assert lab.sh("mac1", "stat -c '%U %G %a' /Users/admin/.ssh /Users/admin/.ssh/authorized_keys").split() == [
        "admin", "admin", "700", "admin", "admin", "600",
    ]  # fmt: skip


# --- sudo ----------------------------------------------------------------------------------------


def test_sudo_asks_for_the_admins_password(lab):
    password_file = lab.dir / "keys" / "admin_password"
    assert (os.stat(password_file).st_mode & 0o777, os.stat(password_file).st_uid) == (0o600, 0)
    password = admin_password(lab)
    assert len(password) >= 20

    for mac in ("mac1", "mac3"):
        no_password = ssh(lab, "admin", mac, "sudo -n id -u")
        assert no_password.returncode == 1
        assert "a password is required" in no_password.stderr
        wrong = ssh(lab, "admin", mac, "sudo -S -p '' id -u", input_text="not-the-password\n")
        assert (wrong.returncode, wrong.stdout) == (1, "")
        right = ssh(lab, "admin", mac, "sudo -S -p '' id -u", input_text=password + "\n")
        assert (right.returncode, right.stdout) == (0, "0\n"), right.stderr
    # pam_unix checks a SHA-512 crypt hash in the Mac's own /etc/shadow.
    shadow = lab.sh("mac1", "grep '^admin:' /etc/shadow").split(":")
    assert shadow[1].startswith("$6$")


def test_sudoers_is_macos_stock(lab):
    for mac in ("mac1", "mac2"):
        assert lab.sh(mac, "cat /etc/sudoers") == host.SUDOERS
        assert lab.sh(mac, "stat -c '%U %a' /etc/sudoers").split() == ["root", "440"]
        assert lab.sh(mac, "ls -A /etc/sudoers.d") == ""  # none of the machine's drop-ins leak in
        checked = lab.exec(mac, "visudo", "-c")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        rules = lab.sh(mac, "sudo -l -U admin")
        assert "(ALL) ALL" in rules and "NOPASSWD" not in rules
        assert "env_reset" in rules


def test_passwordless_sudo_drop_in(lab):
    """What `pfguard-lab up --sudo-nopasswd` installs, tried on a running Mac (a second lab is dear)."""
    (path, content), = ((p, c) for p, c in host.sudoers_files(nopasswd=True).items() if p != "/etc/sudoers")
    mac = "mac3"
    assert ssh(lab, "admin", mac, "sudo -n true").returncode == 1
    written = lab.exec(mac, "/bin/sh", "-c", f"umask 337 && cat > {path}", input_text=content)
    assert written.returncode == 0, written.stderr
    try:
        assert lab.exec(mac, "visudo", "-c").returncode == 0
        allowed = ssh(lab, "admin", mac, "sudo -n id -u")
        assert (allowed.returncode, allowed.stdout) == (0, "0\n"), allowed.stderr
    finally:
        lab.exec(mac, "rm", "-f", path)
    assert ssh(lab, "admin", mac, "sudo -n true").returncode == 1


# --- Ansible -------------------------------------------------------------------------------------


def test_ansible_becomes_root_with_sudo_and_sudo_drops_ssh_connection(lab):
    rc, result = lab.adhoc("mac1", "ansible.builtin.command", {"argv": ["id", "-u"]})
    assert (rc, result["stdout"]) == (0, "0"), result
    rc, result = lab.adhoc("mac2", "ansible.builtin.command", {"argv": ["env"]})
    become = environment(result)
    assert "SSH_CONNECTION" not in become and "SSH_CLIENT" not in become
    assert (become["USER"], become["SUDO_USER"], become["HOME"]) == ("root", "admin", host.ROOT_HOME)

    rc, result = lab.adhoc("mac2", "ansible.builtin.command", {"argv": ["env"]}, "-e", "ansible_become=false")
    login = environment(result)
    assert login["USER"] == "admin" and "SUDO_USER" not in login
    assert login["SSH_CONNECTION"].split()[0] == CONTROLLER


def table_entries(lab, mac: str, anchor: str, table: str) -> str:
    shown = lab.exec(mac, "/sbin/pfctl", "-q", "-a", anchor, "-t", table, "-T", "show")
    return shown.stdout if shown.returncode == 0 else ""


@pytest.mark.parametrize(
    ("addresses", "named"),
    [
        ("198.51.100.0/24", "overlaps the controller's address 198.51.100.1"),
        ("198.51.100.1", "overlaps the controller's address 198.51.100.1"),
        ("10.0.0.0/8", "allow_wide_networks"),
        ("0.0.0.0/0", "covers every IPv4 address"),
    ],
)
def test_an_ad_hoc_ban_through_sudo_cannot_lock_the_controller_out(lab, addresses, named):
    """Under become, sudo drops SSH_CONNECTION; the action plugin still learns the controller's address
    from the login user's connection and the module refuses, naming it, before any change."""
    macs = sorted(lab.macs())
    before = {mac: table_entries(lab, mac, "pfguard", "x") for mac in macs}
    for mac in macs:
        rc, result = lab.adhoc(mac, "pfguard.macos.pfctl_table", f"table=x anchor=pfguard addresses={addresses}", "-b")
        assert rc != 0 and result.get("failed") is True, result
        assert named in result["msg"] and "Nothing was changed" in result["msg"], result["msg"]
        assert "198.51.100.1" in result["msg"], result["msg"]
    assert {mac: table_entries(lab, mac, "pfguard", "x") for mac in macs} == before


def test_an_ad_hoc_ban_through_sudo_that_spares_the_controller_goes_through(lab):
    try:
        rc, result = lab.adhoc("mac1", "pfguard.macos.pfctl_table",
                               "table=x anchor=pfguard addresses=203.0.113.77", "-b")  # fmt: skip
        assert rc == 0 and result["changed"] is True and result["controller_address"] == [CONTROLLER], result
        assert table_entries(lab, "mac1", "pfguard", "x").split() == ["203.0.113.77"]
    finally:
        lab.exec("mac1", "/sbin/pfctl", "-q", "-a", "pfguard", "-t", "x", "-T", "kill")


def test_ansible_become_user_admin(lab):
    rc, result = lab.adhoc("mac1", "ansible.builtin.command", {"argv": ["id", "-un"]}, "--become-user", "admin")
    assert (rc, result["stdout"]) == (0, "admin"), result
    # The roles' Homebrew tasks (become_user: the prefix's owner, the login user here): admin's own
    # environment and home, not root's.
    env = environment(lab.adhoc("mac1", "ansible.builtin.command", {"argv": ["env"]}, "--become-user", "admin")[1])
    assert (env["USER"], env["HOME"]) == ("admin", "/Users/admin")


def test_a_become_false_task_needs_the_task_variable_and_the_guard_sees_the_controller(lab, tmp_path):
    """Under the lab's inventory (`ansible_become: true`, as inventory/example) the inventory variable
    overrides a bare `become: false` keyword: a task that must run as the login user (the plays' result
    file on the controller) also sets `ansible_become: false` as a task variable. pfctl_table's action
    plugin reads SSH_CONNECTION as the login user, so even under sudo the module knows the controller,
    which sync.yml takes from it."""
    play = tmp_path / "play.yml"
    play.write_text("""\
- hosts: mac1
  gather_facts: false
  tasks:
    - name: The keyword alone
      ansible.builtin.command: id -un
      become: false
      register: keyword_only
    - name: The keyword and the task variable
      ansible.builtin.command: id -un
      become: false
      vars:
        ansible_become: false
      register: with_variable
    - name: The controller as pfctl_table sees it under sudo
      pfguard.macos.pfctl_table:
        anchor: pfguard
        table: pfguard_blocklist
        addresses: []
        kill_states: false
      check_mode: true
      register: guard
    - ansible.builtin.assert:
        that:
          - keyword_only.stdout == "root"
          - with_variable.stdout == "admin"
          - guard.controller_address == ["%s"]
""" % CONTROLLER)
    run = lab.playbook(play)
    assert run.returncode == 0, str(run)
    assert run.recap["mac1"]["failed"] == 0 and "All assertions passed" in run.stdout, str(run)


# --- no lab needed -------------------------------------------------------------------------------


def _group_vars(tmp_path, **kwargs) -> dict:
    hosts, _ = fleet.load_spec()
    lab = fleet.Lab(tmp_path)
    return lab.inventory(hosts, **kwargs)["all"]["children"]["macs"]["vars"]


def test_inventory_logs_in_as_admin_and_becomes_root_with_sudo(tmp_path):
    group = _group_vars(tmp_path)
    assert group["ansible_user"] == "admin"
    assert group["ansible_ssh_private_key_file"] == str(tmp_path / "keys" / "id_ed25519")
    assert (group["ansible_become"], group["ansible_become_method"]) == (True, "sudo")
    # The password stays in its root-only file; the inventory only looks it up.
    assert group["ansible_become_password"] == (
        f"{{{{ lookup('ansible.builtin.file', '{tmp_path / 'keys' / 'admin_password'}') }}}}"
    )
    assert group["ansible_pipelining"] is True
    assert group["ansible_control_path_dir"] == str(tmp_path / "cp")

    nopasswd = _group_vars(tmp_path, sudo_nopasswd=True)
    assert "ansible_become_password" not in nopasswd
    assert (nopasswd["ansible_user"], nopasswd["ansible_become"]) == ("admin", True)


def test_sudoers_files_and_the_nopasswd_option():
    assert host.sudoers_files(nopasswd=False) == {"/etc/sudoers": host.SUDOERS}
    assert host.sudoers_files(nopasswd=True) == {
        "/etc/sudoers": host.SUDOERS,
        "/etc/sudoers.d/pfguard-lab-nopasswd": "%admin\t\tALL = (ALL) NOPASSWD: ALL\n",
    }
    lines = [line for line in host.SUDOERS.splitlines() if line and not line.startswith("#")]
    assert "Defaults\tenv_reset" in lines
    assert not any("SSH_CONNECTION" in line or "SSH_CLIENT" in line for line in lines)
    assert [line.split() for line in lines if not line.startswith("Defaults")] == [
        ["root", "ALL", "=", "(ALL)", "ALL"], ["%admin", "ALL", "=", "(ALL)", "ALL"],
    ]  # fmt: skip
    assert cli.build_parser().parse_args(["up", "--sudo-nopasswd"]).sudo_nopasswd is True
    assert cli.build_parser().parse_args(["up"]).sudo_nopasswd is False


@pytest.mark.parametrize("nopasswd", [False, True])
def test_generated_sudoers_files_pass_visudo(tmp_path, nopasswd):
    visudo = shutil.which("visudo") or "/usr/sbin/visudo"
    assert os.access(visudo, os.X_OK), "visudo (Debian package sudo) is missing"
    for mac_path, content in host.sudoers_files(nopasswd).items():
        local = tmp_path / Path(mac_path).name
        local.write_text(content)
        local.chmod(0o440)
        checked = subprocess.run([visudo, "-c", "-q", "-f", str(local)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"{mac_path}: {checked.stdout}{checked.stderr}"


def test_hash_password_is_a_salted_sha512_crypt_of_the_password():
    first, second = host.hash_password("correct horse"), host.hash_password("correct horse")
    assert first != second  # a fresh salt each time
    salt = first.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="correct horse\n",
                           capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert again.stdout.strip() == first
    other = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="wrong horse\n",
                           capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert other.stdout.strip() != first
