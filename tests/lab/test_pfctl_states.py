# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl -s states, -k, -K and -F states with the json states backend (docs/reference/pfctl.md#state-listing)."""

from __future__ import annotations

import pytest
from pf_fixtures import ALTQ, USAGE
from pfguard_lab.emulators.pf import states

pytest_plugins = ["pf_fixtures"]

# pfctl.md#state-listing captured lines, as seed() dicts (src/dst = initiator/responder peer states)
CAPTURED = [
    ("ALL tcp 172.16.7.27:59833 -> 10.82.16.60:389       ESTABLISHED:ESTABLISHED",
     dict(proto="tcp", direction="out", lan={"addr": "172.16.7.27", "port": 59833},
          ext={"addr": "10.82.16.60", "port": 389}, src_state="ESTABLISHED", dst_state="ESTABLISHED")),
    ("ALL tcp 127.0.0.1:12300 <- 10.82.16.60:389 <- 172.16.7.27:59833       ESTABLISHED:ESTABLISHED",
     dict(proto="tcp", direction="in", lan={"addr": "127.0.0.1", "port": 12300},
          gwy={"addr": "10.82.16.60", "port": 389}, ext={"addr": "172.16.7.27", "port": 59833},
          src_state="ESTABLISHED", dst_state="ESTABLISHED")),
    ("ALL tcp 100.64.108.160:65285 -> 52.208.177.221:80       SYN_SENT:CLOSED",
     dict(proto="tcp", direction="out", lan={"addr": "100.64.108.160", "port": 65285},
          ext={"addr": "52.208.177.221", "port": 80}, src_state="SYN_SENT", dst_state="CLOSED")),
    ("ALL udp 127.0.0.1:12299 <- 192.168.100.1:53 <- 192.168.100.3:61931       MULTIPLE:MULTIPLE",
     dict(proto="udp", direction="in", lan={"addr": "127.0.0.1", "port": 12299},
          gwy={"addr": "192.168.100.1", "port": 53}, ext={"addr": "192.168.100.3", "port": 61931},
          src_state="MULTIPLE", dst_state="MULTIPLE")),
    ("ALL udp 192.168.100.3:55009 -> 192.168.100.1:53       SINGLE:NO_TRAFFIC",
     dict(proto="udp", direction="out", lan={"addr": "192.168.100.3", "port": 55009},
          ext={"addr": "192.168.100.1", "port": 53}, src_state="SINGLE", dst_state="NO_TRAFFIC")),
    ("ALL tcp 127.0.0.1:61661 <- 127.0.0.1:1143       SYN_SENT:ESTABLISHED",
     dict(proto="tcp", direction="in", lan={"addr": "127.0.0.1", "port": 61661},
          ext={"addr": "127.0.0.1", "port": 1143}, src_state="ESTABLISHED", dst_state="SYN_SENT")),
]


def tcp(direction, lan, ext, state="ESTABLISHED"):
    (la, lp), (ea, ep) = lan, ext
    return dict(proto="tcp", direction=direction, lan={"addr": la, "port": lp}, ext={"addr": ea, "port": ep},
                src_state=state, dst_state=state)


def shown(pf_ctl):
    return pf_ctl("-q", "-s", "states").out.splitlines()


def test_no_states_prints_nothing(pf_ctl):
    assert tuple(pf_ctl("-s", "states")) == (0, "", ALTQ)


def test_states_render_like_the_macos_captures(pf_ctl):
    pf_ctl.seed([state for _, state in CAPTURED])
    assert shown(pf_ctl) == [line for line, _ in CAPTURED]


def test_ipv6_and_icmp_formats(pf_ctl):
    pf_ctl.seed([
        tcp("out", ("2001:db8::1", 22), ("2001:db8::2", 50000)),
        dict(proto="icmp", direction="out", lan={"addr": "192.0.2.1", "port": 0},
             ext={"addr": "192.0.2.2", "port": 0}, src_state=0, dst_state=0),
    ])
    assert shown(pf_ctl) == [
        "ALL tcp 2001:db8::1[22] -> 2001:db8::2[50000]       ESTABLISHED:ESTABLISHED",
        "ALL icmp 192.0.2.1:0 -> 192.0.2.2:0       0:0",
    ]


def test_seed_rejects_impossible_states(pf_ctl):
    with pytest.raises(states.StateError):
        pf_ctl.seed([tcp("out", ("192.0.2.1", 1), ("192.0.2.2", 2), state="MULTIPLE")])
    with pytest.raises(states.StateError):
        pf_ctl.seed([tcp("sideways", ("192.0.2.1", 1), ("192.0.2.2", 2))])


def test_kill_matches_states_initiated_by_the_host(pf_ctl):
    pf_ctl.seed([
        tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 40000)),   # attacker -> us: initiated by .200
        tcp("out", ("198.51.100.11", 40001), ("198.51.100.200", 80)),  # us -> attacker: initiated by us
        tcp("in", ("198.51.100.11", 22), ("198.51.100.50", 40002)),
    ])
    assert tuple(pf_ctl("-k", "198.51.100.200")) == (
        0, "", ALTQ + "killed 1 states from 1 sources and 0 destinations\n")
    assert [line.split()[2] for line in shown(pf_ctl)] == ["198.51.100.11:40001", "198.51.100.11:22"]


def test_kill_any_to_host_kills_connections_to_it(pf_ctl):
    pf_ctl.seed([
        tcp("out", ("198.51.100.11", 40001), ("198.51.100.200", 80)),
        tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 40000)),
    ])
    assert pf_ctl("-k", "0.0.0.0/0", "-k", "198.51.100.200").err == (
        ALTQ + "killed 1 states from 1 sources and 1 destinations\n")
    assert shown(pf_ctl) == ["ALL tcp 198.51.100.11:22 <- 198.51.100.200:40000       ESTABLISHED:ESTABLISHED"]


def test_kill_network_and_quiet(pf_ctl):
    pf_ctl.seed([tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 1)),
                 tcp("in", ("198.51.100.11", 22), ("198.51.100.201", 2))])
    assert tuple(pf_ctl("-q", "-k", "198.51.100.192/26")) == (0, "", "")
    assert shown(pf_ctl) == []


def test_kill_with_nothing_matching_exits_0(pf_ctl):
    assert tuple(pf_ctl("-k", "192.0.2.1")) == (0, "", ALTQ + "killed 0 states from 1 sources and 0 destinations\n")


def test_kill_with_mismatched_families_kills_nothing(pf_ctl):
    pf_ctl.seed([tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 1))])
    assert pf_ctl("-k", "198.51.100.200", "-k", "::1").err == (
        ALTQ + "killed 0 states from 1 sources and 0 destinations\n")
    assert len(shown(pf_ctl)) == 1


def test_third_kill_is_an_error(pf_ctl):
    assert tuple(pf_ctl("-k", "1.1.1.1", "-k", "2.2.2.2", "-k", "3.3.3.3")) == (
        1, "", "pfctl: can only specify -k twice\n" + USAGE)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("1.2.3.4/40", "pfctl: prefix too long for AF_INET\n"),
        ("1.2.3.4/x", "pfctl: prefix is invalid: x\n"),
        ("1.2.3.4/200", "pfctl: prefix is too large: 200\n"),
        ("not a host", "pfctl: getaddrinfo: nodename nor servname provided, or not known\n"),
        # pfctl.md#address-input: a name under `.invalid` never resolves
        ("host.invalid", "pfctl: getaddrinfo: nodename nor servname provided, or not known\n"),
    ],
)
def test_kill_argument_errors_exit_1(pf_ctl, target, message):
    assert tuple(pf_ctl("-q", "-k", target)) == (1, "", message)


def test_kill_label_would_need_dns(pf_ctl):
    rc, _, err = pf_ctl("-q", "-k", "label")
    assert rc == 1 and err.endswith("is not supported by the lab\n")


def test_kill_runs_after_show(pf_ctl):
    pf_ctl.seed([tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 1))])
    result = pf_ctl("-k", "198.51.100.200", "-s", "states")
    assert result.out == "ALL tcp 198.51.100.11:22 <- 198.51.100.200:1       ESTABLISHED:ESTABLISHED\n"
    assert shown(pf_ctl) == []


def test_kill_with_noaction_is_refused_by_the_read_only_device(pf_ctl):
    assert tuple(pf_ctl("-n", "-k", "192.0.2.1")) == (1, "", "pfctl: DIOCKILLSTATES: Permission denied\n")


def test_kill_source_nodes(pf_ctl):
    assert tuple(pf_ctl("-K", "192.0.2.1")) == (0, "", ALTQ + "killed 0 src nodes from 1 sources and 0 destinations\n")


def test_flush_states_and_info_count(pf_ctl):
    pf_ctl.seed([state for _, state in CAPTURED])
    assert pf_ctl("-q", "-s", "info").out.splitlines()[3] == "  current entries                        6               "
    assert tuple(pf_ctl("-F", "states")) == (0, "", ALTQ + "6 states cleared\n")
    assert shown(pf_ctl) == []


def test_states_survive_pf_being_disabled(pf_ctl):
    pf_ctl.seed([tcp("in", ("198.51.100.11", 22), ("198.51.100.200", 1))])
    pf_ctl.q("-e")
    pf_ctl.q("-d")
    assert len(shown(pf_ctl)) == 1
