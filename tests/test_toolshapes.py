"""The rule shapes tools write (iptexplain.parse.toolshapes), judged by the dumps those tools wrote.

A tool's own iptables-save dump is the answer key: its rules with their -i/-o erased are what
``iptables -nL`` shows; filling them in from the shapes must give back exactly the dump's rules
(never an interface the tool did not write), and must fill the rules the shapes describe.  The
corpus's generated hosts also come as real ``iptables -nL`` text of the same host
(/work/shared/corpus/generated: .save and .nL), read as a user would paste it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from iptexplain.host import HostModel, IfAddr, Interface
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.parse.toolshapes import fill_in

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
GENERATED = Path("/work/shared/corpus/generated")

TOOL_DUMPS = {
    # dump: how many rules the shapes must give their interfaces back to, without a host model
    # and with one naming the bridges (several Docker networks: the listing alone cannot say
    # which bridge is which)
    "seed-docker.v4.save": (10, 10),
    # (the rows written once per network -- FORWARD's groups, DOCKER-ISOLATION, DOCKER-CT --
    # stay hidden: Docker does not keep the networks in one order across chains)
    "docker20-containers.v4.save": (0, 10),
    "moby28.0-usernet-portmap.v4.save": (0, 5),
    "moby28.5-usernet-portmap.v4.save": (0, 5),
    "moby29.0-usernet-portmap.v4.save": (0, 4),
    "libvirt-nat-tftp.v4.save": (16, 16),
    "ufw-generated.v4.save": (2, 2),
    "firewalld-iptables-backend.v4.save": (3, 3),
}


def hide_interfaces(text: str, name: str):
    """The dump as an -nL listing shows it: every rule without its -i/-o, interfaces hidden."""
    rs = parse_text(text, name)
    truth = {}
    for r in rs.rules():
        truth[r] = r.spec()
        r.header = dataclasses.replace(r.header, iniface=None, iniface_inv=False, outiface=None, outiface_inv=False)
    rs.hidden = {"interfaces", "counters"}
    return rs, truth


def bridges_host(text: str) -> HostModel:
    """A host model naming the bridges of the dump's networks (`-s NET ! -o BR -j MASQUERADE`)."""
    host = HostModel(source="test")
    for net, br in re.findall(r"-A POSTROUTING -s (\S+) ! -o (\S+) -j MASQUERADE", text):
        addr, _, plen = net.partition("/")
        first = addr.rsplit(".", 1)[0] + ".1"
        if br not in host.interfaces:
            host.add_interface(Interface(br, [IfAddr(first, int(plen or 32))], kind="bridge"))
    return host


@pytest.mark.parametrize("name", sorted(TOOL_DUMPS))
def test_filled_rules_are_the_tools_own(name: str) -> None:
    text = (FIXTURES / name).read_text()
    for least, host in zip(TOOL_DUMPS[name], (None, bridges_host(text))):
        rs, truth = hide_interfaces(text, name)
        n = fill_in(rs, host)
        wrong = [(truth[r], r.spec()) for r in rs.filled if r.spec() != truth[r]]
        assert not wrong, wrong[:5]
        with_iface = [r for r, f in rs.filled.items() if f.iniface or f.outiface]
        assert n == len(rs.filled) and len(with_iface) >= least, (len(with_iface), n, host)
        # Every rule filled with an interface says from which tool's standard rules.
        assert all("standard rules" in f.text for r, f in rs.filled.items() if f.iniface or f.outiface)


@pytest.mark.parametrize("name", ["docker20-containers.v4.save", "moby29.0-usernet-portmap.v4.save"])
def test_several_networks_are_told_apart_by_the_host_model(name: str) -> None:
    # Several Docker networks: without a host model only rules tied to one network by an
    # address could be filled, and none is (the bridge names are not in the listing); with the
    # bridges of the host, each rule gets its own, exactly as the tool wrote it.
    text = (FIXTURES / name).read_text()
    rs, truth = hide_interfaces(text, name)
    fill_in(rs)
    assert not [r for r, f in rs.filled.items() if f.iniface or f.outiface]
    rs2, truth2 = hide_interfaces(text, name)
    fill_in(rs2, bridges_host(text))
    filled = [r for r, f in rs2.filled.items() if f.iniface or f.outiface]
    assert filled and all(r.spec() == truth2[r] for r in rs2.filled)


@pytest.mark.parametrize("name,least", [("kube-proxy-k8s-node-flannel.v4.save", 40), ("k3s-node.v4.save-c", 40),
                                        ("kube-proxy-ipvs-calico-nat.v4.save", 10), ("fail2ban.v4.save", 10)])
def test_tools_that_name_no_interface_leave_nothing_hidden(name: str, least: int) -> None:
    # kube-proxy, flannel and fail2ban write no -i/-o in their chains: their rules are filled in
    # as having none (what their dumps say), except kube-proxy's local-traffic detector rules
    # that show no source, which may hide `-i cbr0` / `-i veth+`.
    text = (FIXTURES / name).read_text()
    rs, truth = hide_interfaces(text, name)
    fill_in(rs)
    assert all(r.spec() == truth[r] for r in rs.filled)
    assert len(rs.filled) >= least, len(rs.filled)
    for r in rs.filled:
        if r.chain.startswith("KUBE-SVC-") and r.target_name == "KUBE-MARK-MASQ":
            assert "-s " in r.spec(), r


def test_nothing_is_filled_where_no_tool_wrote_the_rules() -> None:
    for name in ("shorewall-universal.v4.save", "home-user-net-network.v4.save"):
        rs, _ = hide_interfaces((FIXTURES / name).read_text(), name)
        fill_in(rs)
        assert not rs.filled, name


def test_listing_with_interfaces_is_left_alone() -> None:
    rs = parse_text((FIXTURES / "seed-docker.v4.save").read_text(), "seed-docker.v4.save")
    assert fill_in(rs) == 0 and not rs.filled


def test_docker_dnat_without_the_return_rule_is_not_given_an_interface() -> None:
    # Docker without the userland proxy's `-i docker0 -j RETURN` writes its DNAT rules with no
    # -i at all; they list exactly like the `! -i docker0` ones, so only the RETURN tells them apart.
    text = (FIXTURES / "docker20-containers.v4.save").read_text()
    assert "-A DOCKER -i docker0 -j RETURN" not in text
    rs, truth = hide_interfaces(text, "docker20")
    fill_in(rs, bridges_host(text))
    dnat = [r for r in rs.rules() if r.table == "nat" and r.target_name == "DNAT"]
    assert dnat and all(r.header.iniface is None and r.spec() == truth[r] for r in dnat)


@pytest.mark.skipif(not GENERATED.is_dir(), reason="the shared corpus is not on this machine")
@pytest.mark.parametrize("host", ["docker20_containers_nft", "docker20_daemon-only_nft", "libvirt-nat-tftp_nft",
                                  "ufw_nft", "firewalld-iptables-backend_nft"])
def test_real_listing_of_a_generated_host(host: str) -> None:
    """The real `iptables -nL` of a generated host, against its own iptables-save."""
    save = parse_text((GENERATED / f"{host}.v4.save").read_text(), "save")
    listing = parse_text((GENERATED / f"{host}.v4.nL").read_text(), "nL")
    assert "interfaces" in listing.hidden
    fill_in(listing)
    truth = {(r.table, r.chain, r.number): r.spec() for r in save.rules()}
    checked = 0
    for r in listing.rules():
        if r in listing.filled:
            assert r.spec() == truth[(r.table, r.chain, r.number)], r
            checked += 1
    assert checked >= 3, checked


def test_seed_listing_traced_as_the_kernel_does() -> None:
    """Issue 19's seed: the listing's hidden `-i docker0` filled in, the flow DNATed and forwarded."""
    rs = parse_text((FIXTURES / "seed-blog-listing.txt").read_text(), "seed-blog-listing.txt")
    tr = trace_flow(rs, T.Flow(proto="tcp", dport=9525))
    first = next(iter(tr.leaves()))
    assert first.outcome.kind == T.FORWARDED and first.outcome.packet["dst"] == "172.17.0.6"
    assert first.outcome.packet["dport"] == "9525"
    chains = [s.chain for s in first.steps if s.kind == T.RULE and s.matched and s.hook == "FORWARD"]
    assert chains[:1] == ["FORWARD"] and {"DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER"} <= set(chains)
    assert "Docker's standard rules" in first.outcome.uncertain
