#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: launchd_job
short_description: Load, unload, restart, enable or disable one launchd job of the system domain
version_added: 0.2.0
description:
  - Manages one LaunchDaemon in launchd's C(system) domain with launchctl's modern verbs
    (C(bootstrap), C(bootout), C(kickstart), C(enable), C(disable), C(print), C(print-disabled)), and
    waits for launchd to finish what they start.
  - Reads the job's state with C(launchctl print system/LABEL) and launchd's store of overrides with
    C(launchctl print-disabled system), and runs a changing verb only for a real difference, so a second
    run reports no change (V(restarted) and V(reloaded) always change).
  - A job disabled in launchd's store (C(launchctl disable)) cannot be bootstrapped and is not loaded at
    boot, so every state that loads the job runs C(launchctl enable system/LABEL) first when it is disabled.
  - Without O(state) and O(enabled) it only reports the job's status, also in check mode. With O(names) it
    reports the status of several jobs in one task (one C(launchctl print-disabled) for all of them), for
    plays that read many Macs and should not pay a round trip per job.
  - Every option and the plist are checked before the first launchctl call; a value that is refused is
    named in the error and nothing is changed. Every line launchctl prints is parsed strictly; a line
    that is not what launchctl prints fails the task naming it.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.command_timeout
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the job's status and lists the commands that would run in RV(commands); runs none of them.
  diff_mode:
    support: full
    details: Shows whether the job is loaded and enabled, before and after, and the plist's text when
      O(definition) changes it.
  platform:
    support: full
    platforms: darwin
options:
  name:
    description:
      - The job's label, for example C(org.pfguard.pf).
      - 1 to 255 ASCII letters, digits, C(.), C(_) and C(-), starting with a letter or digit.
      - Exactly one of O(name) and O(names) is required.
    type: str
  names:
    description:
      - The labels of several jobs whose status to report, read-only, in RV(jobs); each is checked as O(name) is.
      - It cannot go with O(plist), O(state) or O(enabled), which manage one job.
    type: list
    elements: str
    version_added: 0.3.0
  plist:
    description:
      - Absolute path of the job's LaunchDaemon plist, for example C(/Library/LaunchDaemons/org.pfguard.pf.plist).
      - Required with O(state=loaded), O(state=restarted) and O(state=reloaded), which bootstrap it.
      - When given it must be a regular file (a symbolic link is refused, not followed) owned by root:wheel
        and writable by nobody else, holding a property list whose C(Label) is O(name); otherwise the task
        fails naming the path and the reason, before any launchctl call.
      - A missing plist fails the task when it would be bootstrapped. In check mode it only warns, as a play
        creates the file in an earlier task that check mode does not run.
      - Its C(Disabled) key decides whether the job is enabled when launchd's store has no override for it.
      - With O(definition) the module writes it; a file in its place is replaced unless it is not a regular
        file (a symbolic link, a directory, a FIFO, a device), which is refused, as is a missing directory.
    type: str
  definition:
    description:
      - The job's definition, the keys of launchd.plist(5) (for example C(ProgramArguments), C(RunAtLoad),
        C(StartInterval)), to be installed at O(plist), owned by root:wheel with mode C(0644).
      - C(Label) is set to O(name) when absent and must equal it when given. Values are text without control
        characters, integers, booleans, lists and dictionaries; anything else is refused naming the key.
      - The file is written (Python's plistlib, XML, keys sorted, to a temporary file that then replaces the
        plist) only when what launchd would read differs, or its owner or mode do; RV(plist_changed) tells.
      - A changed plist reaches launchd, as launchd reads a plist only when it loads it. With O(state=loaded)
        a loaded job is then booted out and bootstrapped again, as with O(state=reloaded). So one task
        installs and loads a job, and a second run changes nothing.
      - Requires O(plist); it cannot go with O(names).
    type: dict
    version_added: 0.3.0
  state:
    description:
      - V(loaded) bootstraps the job when launchd does not know it.
      - V(unloaded) boots the job out when it is loaded and waits until launchd no longer knows it
        (C(bootout) returns before the job is gone).
      - V(restarted) kills and starts a loaded job again (C(kickstart -k)) and waits until a new run
        began, or bootstraps a job that is not loaded. It does not read the plist again.
      - V(reloaded) boots a loaded job out, waits until it is gone and bootstraps the plist again, so
        launchd runs the plist's current contents; a job that is not loaded is bootstrapped.
      - V(loaded), V(restarted) and V(reloaded) enable the job first when it is disabled.
      - When omitted the job is not loaded or unloaded.
    type: str
    choices: [loaded, unloaded, restarted, reloaded]
  enabled:
    description:
      - V(true) runs C(launchctl enable system/LABEL) when the job is disabled, by launchd's store or, without
        an override there, by the plist's C(Disabled) key.
      - V(false) runs C(launchctl disable system/LABEL) unless launchd's store already says disabled, so
        the job is not loaded at the next boot. It cannot go with a state that loads the job.
      - When omitted, the states that load the job enable it and the others leave the override alone.
    type: bool
  wait:
    description:
      - Seconds to wait, at each step, for launchd to finish what a verb started, polling C(launchctl print)
        every 0.2 seconds; 1 to 3600.
      - After C(bootout) until launchd no longer knows the job (at least the job's C(ExitTimeOut), 5 seconds
        unless the plist says otherwise), after C(bootstrap) until launchd shows it, after C(kickstart -k)
        until a new run began, and while a C(bootstrap) that fails with 5 or 37 races a job still being
        booted out.
      - The task fails naming the job and what it waited for when the time is up.
    type: int
    default: 30
  launchctl_path:
    description:
      - Absolute path of launchctl, taken as given (no C(~) or variable expansion), without control
        characters; it must be an executable file.
    type: str
    default: /bin/launchctl
notes:
  - Needs root (C(become)) for every state and for O(enabled); anyone may read the system domain
    (launchctl(1)), so the read-only use does not.
  - Runs launchctl with C(LANG=C). Each call is killed after O(command_timeout) seconds (or when it prints more
    than 1 MiB) and the task fails naming the call; the changing calls made before it are listed in RV(commands).
  - "launchctl's quirks handled (docs/reference/macos.md): C(print) exits 113 for a job launchd does not know;
    C(bootout) exits 3 (or 113) for a job that is not loaded, and 36 (Operation now in progress) while the job
    is still stopping, all of which end in waiting until launchd no longer knows it; C(bootstrap) exits 5
    (or 37 on some versions) for a job already loaded or still being booted out, after which the module
    waits and tries again within O(wait) unless the job is loaded; C(print-disabled) prints
    C(disabled)/C(enabled) or, on older releases, C(true)/C(false)."
  - Why not community.general.launchd (its C(plugins/modules/launchd.py), release 11.4.2 and main) - it drives
    the legacy C(launchctl load) and C(unload) with the plist path and C(start) and C(stop) with the label, and
    reads the state from C(launchctl list); its C(enabled) rewrites the plist's C(RunAtLoad) key (and
    C(force_stop) its C(KeepAlive)) instead of launchd's enable/disable store, so a job disabled with
    C(launchctl disable) stays disabled; it runs launchctl without a time limit and sleeps a fixed 5 seconds
    after C(start) and C(stop) instead of waiting for launchd; and it looks for the plist by file name in the
    LaunchAgents and LaunchDaemons directories, C($HOME) included.
seealso:
  - name: launchctl(1)
    description: Interfaces with launchd (bootstrap, bootout, enable, disable, kickstart, print).
    link: https://man.freebsd.org/cgi/man.cgi?manpath=macOS+26.4&query=launchctl&sektion=1
  - name: launchd.plist(5)
    description: The job definition keys.
    link: https://man.freebsd.org/cgi/man.cgi?manpath=macOS+26.4&query=launchd.plist&sektion=5
"""

EXAMPLES = r"""
- name: Load pfguard's LaunchDaemon (enabled first if someone ran launchctl disable)
  pfguard.macos.launchd_job:
    name: org.pfguard.pf
    plist: /Library/LaunchDaemons/org.pfguard.pf.plist
    state: loaded

- name: Install the job's plist and run what it says (booted out and in again when the plist changed)
  pfguard.macos.launchd_job:
    name: org.pfguard.fail2ban
    plist: /Library/LaunchDaemons/org.pfguard.fail2ban.plist
    definition:
      ProgramArguments: [/opt/homebrew/bin/fail2ban-client, -c, /opt/homebrew/etc/fail2ban, -f, -x, start]
      RunAtLoad: true
      KeepAlive: true
      ExitTimeOut: 30
    state: loaded
    wait: 40  # fail2ban's ExitTimeOut is 30 s

- name: Make launchd run the plist's current contents when an earlier task changed it
  pfguard.macos.launchd_job:
    name: org.example.job
    plist: /Library/LaunchDaemons/org.example.job.plist
    state: "{{ 'reloaded' if example_plist is changed else 'loaded' }}"

- name: Restart fail2ban through launchd
  pfguard.macos.launchd_job:
    name: org.pfguard.fail2ban
    plist: /Library/LaunchDaemons/org.pfguard.fail2ban.plist
    state: restarted

- name: Unload a job and keep it off after a reboot
  pfguard.macos.launchd_job:
    name: org.pfguard.logstream
    state: unloaded
    enabled: false

- name: Ask launchd about a job (read-only)
  pfguard.macos.launchd_job:
    name: org.pfguard.pf
  register: pf_job

- name: Ask launchd about several jobs in one task (read-only); pfguard_jobs.jobs['org.pfguard.pf'].loaded
  pfguard.macos.launchd_job:
    names: [org.pfguard.pf, org.pfguard.fail2ban]
  register: pfguard_jobs
"""

RETURN = r"""
status:
  description: The job's status after the task (in check mode, as it would be; fields a change would make
    unknown are C(null)).
  returned: with O(name)
  type: dict
  contains:
    loaded:
      description: Whether launchd knows the job (C(launchctl print) exits 0).
      type: bool
      sample: true
    enabled:
      description: Whether launchd would load the job (at boot, or by C(bootstrap)), from launchd's store or,
        without an override there, the plist's C(Disabled) key (true when no plist was given).
      type: bool
      sample: true
    override:
      description: What C(launchctl print-disabled system) says for the job, C(enabled) or C(disabled); C(null)
        when the store has no entry for it.
      type: str
      sample: enabled
    state:
      description: The C(state) line of C(launchctl print), for example C(running), C(not running),
        C(spawn scheduled); C(null) when not loaded.
      type: str
      sample: running
    pid:
      description: The job's process id while it runs, else C(null).
      type: int
      sample: 4242
    runs:
      description: How many times launchd started the job since it was loaded; C(null) when not loaded.
      type: int
      sample: 1
    last_exit_code:
      description: The exit code of the job's last run; C(null) when it never exited or was killed by a signal.
      type: int
      sample: 0
    last_signal:
      description: The signal that ended the job's last run, when one did; else C(null).
      type: int
      sample: 15
    path:
      description: The plist launchd loaded the job from; C(null) when not loaded.
      type: str
      sample: /Library/LaunchDaemons/org.pfguard.pf.plist
status_before:
  description: The job's status before the task, with the same fields as RV(status).
  returned: with O(name)
  type: dict
  sample: {"loaded": false, "enabled": false, "override": "disabled", "state": null, "pid": null, "runs": null,
           "last_exit_code": null, "last_signal": null, "path": null}
jobs:
  description: With O(names), each label's status, with the same fields as RV(status).
  returned: with O(names)
  type: dict
  sample: {"org.pfguard.pf": {"loaded": true, "enabled": true, "override": null, "state": "not running", "pid": null,
           "runs": 1, "last_exit_code": 0, "last_signal": null, "path": "/Library/LaunchDaemons/org.pfguard.pf.plist"}}
plist_changed:
  description: Whether O(definition) changed the plist (in check mode, would change it).
  returned: with O(name)
  type: bool
  sample: false
commands:
  description: The changing launchctl command lines run (in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["/bin/launchctl", "enable", "system/org.pfguard.pf"],
           ["/bin/launchctl", "bootstrap", "system", "/Library/LaunchDaemons/org.pfguard.pf.plist"]]
actions:
  description: The verbs of RV(commands), for conditions such as C('bootstrap' in result.actions).
  returned: always
  type: list
  elements: str
  sample: ["enable", "bootstrap"]
"""

import plistlib
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    check_command_timeout,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.launchd import (
    EALREADY,
    EINPROGRESS,
    EIO,
    ESRCH,
    LAUNCHCTL_ARGUMENT_SPEC,
    NOT_FOUND,
    PLIST_MODE,
    PLIST_OWNER,
    STOPPING_STATES,
    Launchctl,
    LaunchctlError,
    PlistProblem,
    check_label,
    check_launchctl_path,
    describe_failure,
    installed_plist,
    job_definition,
    needs_root,
    read_job_plist,
)
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import StagedFile, UnsafePath

LOADING_STATES = ("loaded", "restarted", "reloaded")
WAIT_MAX = 3600
POLL_INTERVAL = 0.2
UNKNOWN_AFTER_CHANGE = ("state", "pid", "runs", "last_exit_code", "last_signal", "path")


def check_inputs(module):
    """Every option and the plist checked before launchctl runs; returns the Plist to go by."""
    params = module.params
    check_command_timeout(module)
    problems = [problem for problem in map(check_label, names_of(params)) if problem]
    if params["names"] is not None:
        extra = [option for option in ("plist", "definition", "state", "enabled") if params[option] is not None]
        if extra:
            problems.append("names reads the status of several jobs; it cannot go with %s" % ", ".join(extra))
    if not 1 <= params["wait"] <= WAIT_MAX:
        problems.append("wait %s is out of range: use 1 to %d seconds" % (params["wait"], WAIT_MAX))
    if params["state"] in LOADING_STATES and params["enabled"] is False:
        problems.append(
            "enabled=false cannot go with state=%s: launchd refuses to bootstrap a disabled job" % params["state"]
        )
    path_problem = check_launchctl_path(params["launchctl_path"])
    if path_problem:
        problems.append(path_problem)
    if problems:
        module.fail_json(msg="%s; nothing was changed" % "; ".join(problems))
    if params["plist"] is None:
        return Plist(None)
    try:
        if params["definition"] is None:
            return Plist(read_job_plist(params["plist"], params["name"]))
        wanted = job_definition(params["definition"], params["name"])
        installed, data = installed_plist(params["plist"], params["name"])
    except PlistProblem as exc:
        module.fail_json(msg="%s; nothing was changed" % exc)
    # Compared in plistlib's own form, so layout and comments do not count but types do (true is not 1).
    if installed is not None and plistlib.dumps(installed, fmt=plistlib.FMT_XML, sort_keys=True) == wanted:
        return Plist(installed)
    return Plist(plistlib.loads(wanted), data, wanted)


class Plist(object):
    """The job definition launchd will read (`spec`, None without one) and, when the task must write the
    plist first, its current bytes (`before`) and the new ones (`after`)."""

    def __init__(self, spec, before=None, after=None):
        self.spec = spec
        self.before = before
        self.after = after

    @property
    def changes(self):
        return self.after is not None

    def install(self, path):
        """Write the new plist in place of `path` (checked again just before it is replaced)."""
        try:
            staged = StagedFile(path, self.after, PLIST_MODE, PLIST_OWNER)
            try:
                staged.commit()
            finally:
                staged.discard()
        except (OSError, UnsafePath) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CommandError("could not write plist %s: %s; launchd was left as it was" % (path, reason)) from None


def names_of(params):
    """The labels the task is about: [name], or names."""
    return [params["name"]] if params["names"] is None else params["names"]


def plan(before, state, enabled):
    """The changing verbs, in order, that take the job from `before` to what was asked."""
    wanted = True if state in LOADING_STATES else enabled
    steps = []
    if wanted is True and not before["enabled"]:
        steps.append("enable")
    elif wanted is False and before["override"] != "disabled":
        steps.append("disable")
    if state == "loaded" and not before["loaded"]:
        steps.append("bootstrap")
    elif state == "unloaded" and before["loaded"]:
        steps.append("bootout")
    elif state == "restarted":
        steps.append("kickstart" if before["loaded"] else "bootstrap")
    elif state == "reloaded":
        steps += ["bootout", "bootstrap"] if before["loaded"] else ["bootstrap"]
    return wanted, steps


def predicted(before, steps, wanted):
    """The status check mode reports: loaded and enabled as the steps would leave them."""
    after = dict(before)
    if "bootstrap" in steps or "kickstart" in steps or "bootout" in steps:
        after.update(dict.fromkeys(UNKNOWN_AFTER_CHANGE))
        after["loaded"] = steps[-1] != "bootout"
    if wanted is not None and ("enable" in steps or "disable" in steps):
        after["enabled"] = wanted
        after["override"] = "enabled" if wanted else "disabled"
    return after


def new_run(before, job):
    """Whether `job` (parse_print's fields) shows a run begun after `before`."""
    if job is None:
        return False
    if job["runs"] is not None and before["runs"] is not None:
        return job["runs"] > before["runs"]
    return job["pid"] is not None and job["pid"] != before["pid"]


class Job(object):
    """Runs the planned verbs for one label and waits, at most `wait` seconds per step, for launchd."""

    def __init__(self, launchctl, label, plist, wait):
        self.launchctl = launchctl
        self.label = label
        self.target = "system/" + label
        self.plist = plist
        self.wait = wait

    def poll(self, done, what):
        """Read the job until done(job) holds; LaunchctlError naming `what` when `wait` runs out."""
        deadline = time.monotonic() + self.wait
        while True:
            job = self.launchctl.job(self.label)
            if done(job):
                return job
            if time.monotonic() >= deadline:
                state = "not loaded" if job is None else "state = %s" % job["state"]
                raise LaunchctlError("%s within %d seconds (wait); launchd shows %s (%s)"
                                     % (what, self.wait, self.target, state))  # fmt: skip
            time.sleep(POLL_INTERVAL)

    def override(self, verb):
        cmd, rc, stdout, stderr = self.launchctl.change([verb, self.target]) or (None, 0, "", "")
        if rc != 0:
            raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)

    def bootstrap(self):
        deadline = time.monotonic() + self.wait
        while True:
            ran = self.launchctl.change(["bootstrap", "system", self.plist])
            if ran is None:  # check mode
                return
            cmd, rc, stdout, stderr = ran
            if rc == 0:
                break
            if rc not in (EIO, EALREADY) or needs_root(stderr):
                raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)
            # Already loaded, or the old job is still being booted out (bootout is asynchronous).
            job = self.launchctl.job(self.label)
            if job is not None and job["state"] not in STOPPING_STATES:
                return
            if time.monotonic() >= deadline:
                raise LaunchctlError(
                    "%s; launchd still does not show %s after %d seconds (wait)"
                    % (describe_failure(cmd, rc, stdout, stderr), self.target, self.wait),
                    cmd, rc, stdout, stderr,
                )  # fmt: skip
            time.sleep(POLL_INTERVAL)
        self.poll(lambda job: job is not None, "bootstrap exited 0 but launchd did not show the job")

    def bootout(self):
        ran = self.launchctl.change(["bootout", self.target])
        if ran is None:
            return
        cmd, rc, stdout, stderr = ran
        # 3 and 113: no longer loaded (or already being removed); 36: the unload goes on.
        if rc not in (0, ESRCH, NOT_FOUND, EINPROGRESS):
            raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)
        self.poll(lambda job: job is None, "bootout ran but launchd did not remove the job")

    def restart(self, before):
        ran = self.launchctl.change(["kickstart", "-k", self.target])
        if ran is None:
            return
        cmd, rc, stdout, stderr = ran
        if rc == NOT_FOUND:  # booted out since it was read: load it
            self.bootstrap()
            return
        if rc != 0:
            raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)
        self.poll(lambda job: new_run(before, job), "kickstart -k ran but the job did not start again")


def render(status):
    return "loaded: %s\nenabled: %s\n" % (str(status["loaded"]).lower(), str(status["enabled"]).lower())


def converge(module, launchctl, plist_file, result):
    params = module.params
    label, plist, spec = params["name"], params["plist"], plist_file.spec
    before = launchctl.status(label, spec)
    result["status_before"] = before
    # A changed definition reaches launchd only by bootout and bootstrap (launchd reads the plist then).
    state = "reloaded" if plist_file.changes and params["state"] == "loaded" else params["state"]
    wanted, steps = plan(before, state, params["enabled"])
    result["plist_changed"] = plist_file.changes
    if plist_file.changes and not module.check_mode:
        plist_file.install(plist)

    if plist is not None and spec is None:
        if "bootstrap" in steps and not module.check_mode:
            module.fail_json(msg="plist %s does not exist; nothing was changed" % plist, **result)
        if "bootstrap" in steps:
            module.warn("plist %s does not exist yet; the task fails unless an earlier task creates it" % plist)
        elif before["loaded"] and params["state"] != "unloaded":
            module.warn("system/%s is loaded but plist %s does not exist: launchd will not load it at the next boot"
                        % (label, plist))  # fmt: skip
    if plist is not None and before["loaded"] and before["path"] not in (None, plist) and "bootout" not in steps:
        module.warn("system/%s is loaded from %s, not from plist %s; state=reloaded loads %s"
                    % (label, before["path"], plist, plist))  # fmt: skip

    job = Job(launchctl, label, plist, params["wait"])
    for step in steps:
        if step in ("enable", "disable"):
            job.override(step)
        elif step == "bootstrap":
            job.bootstrap()
        elif step == "bootout":
            job.bootout()
        else:
            job.restart(before)

    if module.check_mode:
        after = predicted(before, steps, wanted)
    else:
        after = launchctl.status(label, spec)
        problems = []
        if params["state"] in LOADING_STATES and not after["loaded"]:
            problems.append("launchd does not show %s after %s" % (label, ", ".join(launchctl.actions)))
        if params["state"] == "unloaded" and after["loaded"]:
            problems.append("launchd still shows %s after bootout" % label)
        if wanted is True and not after["enabled"]:
            problems.append("launchctl print-disabled does not show %s enabled" % label)
        if wanted is False and after["override"] != "disabled":
            problems.append("launchctl print-disabled does not show %s disabled" % label)
        if problems:
            module.fail_json(msg="; ".join(problems), status=after, **result)
    result.update(changed=bool(steps) or plist_file.changes, status=after)
    if module._diff:
        header = "system/%s" % label
        result["diff"] = [dict(before=render(before), after=render(after), before_header=header, after_header=header)]
        if plist_file.changes:
            result["diff"].insert(0, dict(
                before=plist_file.before.decode("utf-8", "replace"), after=plist_file.after.decode("utf-8"),
                before_header=plist, after_header=plist,
            ))  # fmt: skip
    return result


def report(launchctl, labels, result):
    """The read-only status of several jobs, with one print-disabled for all of them."""
    overrides = launchctl.overrides()
    result["jobs"] = dict((label, launchctl.status(label, None, overrides)) for label in labels)
    return result


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            names=dict(type="list", elements="str"),
            plist=dict(type="str"),
            definition=dict(type="dict"),
            state=dict(type="str", choices=["loaded", "unloaded", "restarted", "reloaded"]),
            enabled=dict(type="bool"),
            wait=dict(type="int", default=30),
            **dict(LAUNCHCTL_ARGUMENT_SPEC, **COMMAND_TIMEOUT_ARGUMENT_SPEC),
        ),
        required_if=[(("state", state, ("plist",))) for state in LOADING_STATES],
        required_one_of=[("name", "names")],
        required_by=dict(definition=("plist", "name")),
        mutually_exclusive=[("name", "names")],
        supports_check_mode=True,
    )
    plist_file = check_inputs(module)
    # An SSH session cut between bootout and bootstrap must not leave the job unloaded: finish.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    launchctl = Launchctl(module.params["launchctl_path"], module.params["command_timeout"], module.check_mode)
    result = dict(changed=False, commands=launchctl.commands, actions=launchctl.actions)
    try:
        if module.params["names"] is not None:
            report(launchctl, module.params["names"], result)
        else:
            converge(module, launchctl, plist_file, result)
    except CommandError as exc:
        module.fail_json(**dict(exc.result(), **result))
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
