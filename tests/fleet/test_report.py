# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/report.yml on the lab: the attacker banned on mac1 and mac2 shows up in the HTML report and
in the terminal table as the fleet's top offender; a second run changes nothing; --check writes nothing."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser

import pytest
from fleet_fixtures import ATTACKER
from lab_fixtures import REPO, run_playbook, wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

ATTACKED = ("mac1", "mac2")
# mac3 is attacked over IPv6: the report lists that address and its /64 (docs/lab-design.md "Dual stack").
ATTACKER6, ATTACKER6_NETWORK = "2001:db8:100:ff::200", "2001:db8:100:ff::/64"
# Elements and attributes that would make the file run or load something (it must open offline).
ACTIVE_TAGS = {"script", "link", "img", "iframe", "object", "embed", "image", "use", "foreignobject"}
LOADING_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action"}


class Page(HTMLParser):
    """A page's elements (tag and attribute names) and every <table> as rows of cell texts."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def loads_nothing(self) -> bool:
        return not (self.tags & ACTIVE_TAGS or self.attributes & LOADING_ATTRIBUTES or
                    any(name.startswith("on") for name in self.attributes))  # fmt: skip

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _value in attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# What a hostile or broken host could put into its facts: every one must reach the page as text.
HOSTILE = {
    "<script>alert(1)</script>": {
        "blocklist": 1,
        "fail2ban": {
            "installed": True, "running": True,
            "jails": {"j<b>": {"currently_banned": 1, "total_banned": 1, "banned": ['"><img src=x onerror=alert(2)>']}},
            "history": [{"jail": "j<b>", "ip": "1.2.3.4&lt;", "timeofban": 1763800000, "bantime": 600, "bancount": 1}],
        },
    },
}  # fmt: skip


def rows_by_first_cell(table: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in table[1:]}


def test_everything_from_hosts_is_escaped(tmp_path):
    """The template alone, on the controller (no lab): hostile names and addresses come out as text."""
    out = tmp_path / "hostile.html"
    template = str(REPO / "playbooks/templates/pfguard-report.html.j2")
    play = [{
        "name": "Render the report from hostile facts", "hosts": "localhost", "gather_facts": False,
        "vars": {"hostile": HOSTILE, "ansible_python_interpreter": sys.executable},
        "tasks": [
            {"name": "Build", "ansible.builtin.set_fact": {"pfguard_report_data":
                "{{ hostile | pfguard.macos.ban_report }}"}},
            {"name": "Render", "ansible.builtin.template": {"src": template, "dest": str(out), "mode": "0644"}},
        ],
    }]  # fmt: skip
    (tmp_path / "play.yml").write_text(json.dumps(play))
    run = run_playbook(tmp_path / "play.yml", "-c", "local", inventory="localhost,", timeout=120)
    assert run.returncode == 0, str(run)
    html = out.read_text()
    page = Page(html)
    assert page.loads_nothing(), (page.tags, page.attributes)
    for raw in ("<script>alert(1)", "j<b>", '"><img', "1.2.3.4&lt;"):
        assert raw not in html
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "j&lt;b&gt;", "&#34;&gt;&lt;img src=x", "1.2.3.4&amp;lt;"):
        assert escaped in html
    hosts, addresses, _networks = page.tables
    assert hosts[1][:5] == ["<script>alert(1)</script>", "running", "j<b>", "1", '"><img src=x onerror=alert(2)>']
    assert sorted(row[0] for row in addresses[1:]) == ['"><img src=x onerror=alert(2)>', "1.2.3.4&lt;"]


@pytest.fixture(scope="module")
def attacked_fleet(fleet):
    """The attacker banned by fail2ban on mac1 and mac2 (IPv4) and on mac3 (IPv6), with no other ban on record
    anywhere."""
    fleet.unban_all()  # `unban --all` also deletes the jails' ban records, so the history starts empty
    try:
        for host in ATTACKED:
            attack = fleet.lab.run("attack", host, "--failures", str(fleet.policy["pfguard_fail2ban_maxretry"]))
            assert attack.returncode == 0, attack.stdout + attack.stderr
            wait_for(lambda host=host: ATTACKER in fleet.f2b_banned(host), 30, what=f"fail2ban's ban on {host}",
                     detail=lambda host=host: fleet.fail2ban_client(host, "status", "sshd").stdout)  # fmt: skip
        attack = fleet.lab.run("attack", "mac3", "--ipv6", "--failures", str(fleet.policy["pfguard_fail2ban_maxretry"]))
        assert attack.returncode == 0, attack.stdout + attack.stderr
        wait_for(lambda: ATTACKER6 in fleet.f2b_banned("mac3"), 30, what="fail2ban's IPv6 ban on mac3",
                 detail=lambda: fleet.fail2ban_client("mac3", "status", "sshd").stdout)  # fmt: skip
        yield fleet
    finally:
        fleet.unban_all()


@pytest.fixture(scope="module")
def first_run(attacked_fleet, tmp_path_factory):
    """report.yml once, into a directory that does not exist yet."""
    path = tmp_path_factory.mktemp("report") / "new" / "pfguard-report.html"
    run = attacked_fleet.lab.playbook("playbooks/report.yml", extra_vars={"pfguard_report_path": str(path)})
    assert run.returncode == 0, str(run)
    return path, run


def test_html_report_names_the_bans(attacked_fleet, first_run):
    path, _run = first_run
    html = path.read_text()
    page = Page(html)
    assert "svg" in page.tags and "rect" in page.tags
    assert page.loads_nothing() and "url(" not in html and "@import" not in html, (page.tags, page.attributes)
    hosts, addresses, networks = page.tables

    by_host = rows_by_first_cell(hosts)
    for host in ATTACKED:
        # host, fail2ban, jail, banned now, addresses banned now, ban records, total banned, pfguard_blocklist
        row = by_host[host]
        assert row[1:6] == ["running", "sshd", "1", ATTACKER, "1"], row
        assert int(row[6]) >= 1, row  # fail2ban's counter also counts earlier test modules' bans
        assert row[7] == str(len(attacked_fleet.blocklist(host))), row
    assert by_host["mac3"][1:6] == ["running", "sshd", "1", ATTACKER6, "1"], by_host["mac3"]
    assert by_host["mac3"][7] == str(len(attacked_fleet.blocklist("mac3"))), by_host["mac3"]
    assert by_host["fleet"][1] == "3" and by_host["fleet"][3] == "3", by_host["fleet"]  # banned now, ban records

    top = addresses[1]  # address, bans, hosts, banned on, last ban
    assert top[:4] == [ATTACKER, "2", "2", "mac1, mac2"], top
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", top[4]), top
    assert addresses[2][:4] == [ATTACKER6, "1", "1", "mac3"], addresses[2]
    assert f"newest ban {max(top[4], addresses[2][4])}" in html  # mac3's IPv6 ban came last
    assert networks[1][:5] == ["198.51.100.0/24", "2", "1", "2", "mac1, mac2"], networks[1]
    assert networks[2][:5] == [ATTACKER6_NETWORK, "1", "1", "1", "mac3"], networks[2]


def test_terminal_table(first_run):
    path, run = first_run
    summary = run.stdout[run.stdout.index("TASK [Summary of the fleet's bans]"):]
    lines = [line.strip() for line in summary.splitlines()]
    assert "pfguard ban report: 3 hosts, 3 addresses banned now, 3 ban records" in summary, summary
    header = next(line for line in lines if line.startswith("host "))
    assert header.split()[:3] == ["host", "jail", "fail2ban"], header
    for host in ATTACKED:
        row = next(line for line in lines if line.startswith(host + " "))
        assert row.split()[:5] == [host, "sshd", "running", "1", "1"], row
    offenders = lines[lines.index("top offending addresses") + 2]
    assert offenders.split()[:3] == [ATTACKER, "2", "2"] and offenders.endswith("mac1, mac2"), offenders
    offenders6 = lines[lines.index("top offending addresses") + 3]
    assert offenders6.split()[:3] == [ATTACKER6, "1", "1"] and offenders6.endswith("mac3"), offenders6
    assert lines[lines.index("top networks") + 2].split()[:2] == ["198.51.100.0/24", "2"]
    assert lines[lines.index("top networks") + 3].split()[:2] == [ATTACKER6_NETWORK, "1"]
    assert f"HTML report: {path}" in summary


def test_second_run_changes_nothing(attacked_fleet, first_run):
    path, run = first_run
    assert run.changed()["mac1"] == 2, str(run)  # the directory and the file, written from mac1's run_once
    before = path.read_bytes()
    again = attacked_fleet.lab.playbook("playbooks/report.yml", extra_vars={"pfguard_report_path": str(path)})
    assert again.returncode == 0, str(again)
    assert set(again.changed().values()) == {0}, str(again)
    assert path.read_bytes() == before


def test_check_mode_writes_nothing(attacked_fleet, tmp_path):
    path = tmp_path / "not-yet" / "pfguard-report.html"
    run = attacked_fleet.lab.playbook("playbooks/report.yml", "--check",
                                      extra_vars={"pfguard_report_path": str(path)})  # fmt: skip
    assert run.returncode == 0, str(run)
    assert not path.parent.exists()
    assert run.changed()["mac1"] == 2, str(run)  # it says what it would write
    assert f"HTML report: {path}" in run.stdout
