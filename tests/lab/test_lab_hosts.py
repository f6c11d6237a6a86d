# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab Macs: exec passthrough, PID 1, provisioning, per-host disks, reboot and os-update."""

from __future__ import annotations

import json
import uuid

from pfguard_lab import commands, host

pytest_plugins = ["lab_fixtures"]

SYSTEM_DAEMONS = ("com.apple.pfctl.plist", "com.openssh.sshd.plist", "com.apple.logd.plist")
STOCK_PF_FILES = ("/etc/pf.conf", "/etc/pf.anchors/com.apple")
AF_ANCHOR = 'anchor "400.AdaptiveFirewall/*"'


def test_exec_passes_stdin_stdout_stderr_and_exit_code_through(lab):
    echoed = lab.exec("mac1", "cat", input_text="hello from the controller\nline 2\n")
    assert (echoed.returncode, echoed.stdout, echoed.stderr) == (0, "hello from the controller\nline 2\n", "")
    mixed = lab.exec("mac2", "/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
    assert (mixed.returncode, mixed.stdout, mixed.stderr) == (7, "to-stdout\n", "to-stderr\n")
    missing = lab.exec("mac1", "/no/such/command")
    assert missing.returncode == 127
    assert lab.run("exec", "mac1").returncode == 2  # no command


def test_exec_runs_inside_the_host(lab):
    for name, address in (("mac1", "198.51.100.11"), ("mac3", "198.51.100.13")):
        assert lab.sh(name, "hostname") == f"{name}\n"
        assert f"{address}/24" in lab.sh(name, "ip -o -4 addr show dev en0")
        # Its own PID namespace: few processes, and none of the controller's.
        pids = [int(p) for p in lab.sh(name, "ls /proc").split() if p.isdigit()]
        assert 1 in pids and len(pids) < 30
    # A client is a plain network namespace.
    assert "198.51.100.200/24" in lab.run("exec", "attacker", "--", "ip", "-o", "-4", "addr").stdout


def test_pid1_is_launchd_running_the_system_daemons(lab):
    for name in ("mac1", "mac2", "mac3"):
        assert lab.sh(name, "ps -p 1 -o comm=").strip() == "launchd"
        assert "/sbin/launchd" in lab.exec(name, "cat", "/proc/1/cmdline").stdout.split("\0")
        processes = lab.sh(name, "ps -eo ppid=,args=")
        assert any(line.split()[0] == "1" and "/usr/sbin/sshd -D" in line for line in processes.splitlines())
        assert any(line.split()[0] == "1" and "pfguard-lab-logd" in line for line in processes.splitlines())


def test_boot_loads_pf_conf_without_enabling_pf(lab):
    # com.apple.pfctl runs `pfctl -f /etc/pf.conf` at load and does not enable PF
    # (docs/reference/macos.md#boot-time-pf-loading).
    for name in ("mac1", "mac3"):
        job = lab.sh(name, "launchctl print system/com.apple.pfctl")
        assert "\tlast exit code = 0\n" in job, job
        assert 'anchor "com.apple/*" all' in lab.sh(name, "pfctl -sr 2>/dev/null").splitlines()
        info = lab.exec(name, "pfctl", "-s", "info")
        assert info.stdout.splitlines()[0] == "%-44s%15s" % ("Status: Disabled", "Debug: Urgent")


def test_macs_are_provisioned_like_macs(lab):
    for name, facts in lab.macs().items():
        host_json = json.loads(lab.sh(name, "cat /var/db/.pfguard-lab/host.json"))
        assert host_json["name"] == name and host_json["role"] == "mac"
        assert host_json["address"] == facts["ansible_host"]
        assert host_json["os_version"] == facts["lab_os_version"]
        assert host_json["arch"] == facts["lab_arch"]
        assert host_json["brew_prefix"] == facts["lab_brew_prefix"]
        assert host_json["server_app"] == facts["lab_server_app"]
        assert lab.sh(name, "sw_vers -productVersion").strip() == facts["lab_os_version"]

        assert lab.sh(name, "stat -c '%U %G %a' /Library/LaunchDaemons").split() == ["root", "root", "755"]
        for plist in SYSTEM_DAEMONS:
            assert lab.sh(name, f"stat -c '%U %a' /System/Library/LaunchDaemons/{plist}").split() == ["root", "644"]
        assert lab.sh(name, "test -d /etc/newsyslog.d && test -f /etc/pf.conf && test -f /etc/pf.anchors/com.apple "
                            "&& test -f /System/Library/CoreServices/SystemVersion.plist && echo ok") == "ok\n"
        for mac_path in commands.SYSTEM_COMMANDS:
            wrapper = lab.sh(name, f"cat {mac_path}")
            assert "'PFGUARD_LAB_PF_ENFORCE', 'nftables'" in wrapper
            assert "'PFGUARD_LAB_PF_STATES', 'conntrack'" in wrapper

        assert lab.sh(name, "id -u admin").strip() == "501"
        assert lab.sh(name, f"stat -c %U {facts['lab_brew_prefix']}/bin").strip() == "admin"
        assert lab.exec(name, "test", "-x", facts["lab_brew_prefix"] + "/bin/brew").returncode == 0
        afctl = lab.exec(name, "test", "-x", commands.AFCTL_PATH).returncode == 0
        assert afctl == facts["lab_server_app"]

        sshd = dict(line.split(" ", 1) for line in lab.sh(name, "sshd -T").splitlines() if " " in line)
        assert sshd["permitrootlogin"] == "no"  # macOS's root account is disabled (test_lab_become.py)
        assert sshd["passwordauthentication"] == "yes"
        assert sshd["kbdinteractiveauthentication"] == "no"
        assert sshd["usepam"] == "yes"
        assert sshd["syslogfacility"] == "AUTH"
        assert sshd["loglevel"] == "INFO"
        assert sshd["maxstartups"] == "100:30:100"
        assert lab.sh(name, "ls /etc/ssh | grep '^ssh_host_.*_key$'").split() == ["ssh_host_ed25519_key"]
        assert lab.sh(name, "test -d /run/sshd && echo ok") == "ok\n"


def test_disk_is_per_host_and_survives_reboot_but_per_boot_state_does_not(lab):
    marker = f"/etc/pfguard-lab-test-{uuid.uuid4().hex[:8]}"
    lab.sh("mac1", f"echo disk > {marker}; echo boot > /var/run/pfguard-lab-test; echo boot > /tmp/pfguard-lab-test; "
                   "nft add table inet pfguard_lab_test")
    assert lab.exec("mac2", "test", "-e", marker).returncode == 1  # another Mac's disk
    pid_before = (lab.dir / "hosts" / "mac1" / "pid").read_text()

    result = lab.run("reboot", "mac1")
    assert result.returncode == 0, result.stderr
    assert "mac1: reboot done" in result.stdout

    assert (lab.dir / "hosts" / "mac1" / "pid").read_text() != pid_before
    assert lab.sh("mac1", f"cat {marker}") == "disk\n"
    assert lab.exec("mac1", "test", "-e", "/var/run/pfguard-lab-test").returncode == 1
    assert lab.exec("mac1", "test", "-e", "/tmp/pfguard-lab-test").returncode == 1
    assert "pfguard_lab_test" not in lab.sh("mac1", "nft list tables")
    assert lab.sh("mac1", "test -d /run/sshd && ps -p 1 -o comm=") == "launchd\n"
    lab.sh("mac1", f"rm {marker}")


def test_os_update_restores_stock_pf_files_and_keeps_the_rest(lab):
    stock = {name: {path: lab.sh(name, f"cat {path}") for path in STOCK_PF_FILES} for name in ("mac1", "mac3")}
    assert stock["mac3"]["/etc/pf.anchors/com.apple"].count(AF_ANCHOR) == 1  # Server.app
    assert AF_ANCHOR not in stock["mac1"]["/etc/pf.anchors/com.apple"]
    for name in stock:
        lab.sh(name, "echo 'anchor \"pfguard\"' >> /etc/pf.conf; echo '# local' >> /etc/pf.anchors/com.apple; "
                     "echo kept > /etc/pfguard-lab-kept")

    for name in stock:
        result = lab.run("os-update", name)
        assert result.returncode == 0, result.stderr
        for path in STOCK_PF_FILES:
            assert lab.sh(name, f"cat {path}") == stock[name][path], f"{name}:{path} not restored"
        assert lab.sh(name, "cat /etc/pfguard-lab-kept") == "kept\n"
        lab.sh(name, "rm /etc/pfguard-lab-kept")


def test_reboot_of_unknown_host_fails_clearly(lab):
    result = lab.run("reboot", "mac99")
    assert result.returncode == 1
    assert "no host 'mac99' in the lab" in result.stderr
    assert lab.run("reboot", "attacker").returncode == 1


def test_host_paths_resolve_symlinks_inside_the_host(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "sbin").symlink_to("usr/sbin")
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")  # absolute, as on Debian
    (root / "etc").mkdir()
    (root / "etc" / "escape").symlink_to("../../../../outside")
    assert host.in_root(root, "/sbin/pfctl") == root / "usr" / "sbin" / "pfctl"
    assert host.in_root(root, "/var/run/pf/state.json") == root / "run" / "pf" / "state.json"
    assert host.in_root(root, "/etc/escape/file") == root / "outside" / "file"


def test_interpreter_paths_hidden_by_per_boot_mounts_are_bound_back():
    paths = ["/tmp/checkout/lab", "/tmp/checkout/.venv", "/tmp/checkout", "/usr/lib/python3", "/run/x/venv"]
    assert host.paths_hidden_in_host(paths) == ["/tmp/checkout", "/run/x/venv"]


def test_pf_kernel_state_does_not_survive_reboot(lab):
    enabled = lab.exec("mac2", "pfctl", "-E")
    assert enabled.returncode == 0, enabled.stderr
    assert lab.sh("mac2", "pfctl -s info 2>/dev/null").startswith("Status: Enabled for ")
    assert lab.run("reboot", "mac2").returncode == 0
    assert lab.sh("mac2", "pfctl -s info 2>/dev/null").startswith("Status: Disabled ")
    assert "No pf starter references held" in lab.sh("mac2", "pfctl -s References 2>/dev/null")
