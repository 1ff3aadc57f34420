"""diff, reach and --why against the kernel: a class's packet sent through the kernel lab with
each ruleset loaded, and a published port's bypass of ufw's INPUT rules sent through the lab
(the kernel's own rule trace never enters INPUT, as --why says).

The analyses run on the lab's own host model (tests/differential.py derives the lab host from
the ruleset and gives the tracer the same host), so their words are about the lab's addresses.
"""

from __future__ import annotations

from pathlib import Path

import differential as D
import kernel_lab as KL
from nft_lab import NftLab
from iptexplain.analysis.diff import Side, diff_rulesets
from iptexplain.analysis.reach import PUBLISHED, reach
from iptexplain.analysis.space import meet
from iptexplain.analysis.undone import PARTLY_UNDONE, UNDONE_ACCEPT, accepts_undone
from iptexplain.analysis.why import NEVER_REACHED, explain, find_rules
from iptexplain.core.packets import point
from iptexplain.inputs.sources import resolve
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def _lab(kernel_labs, plan):
    KL.require_lab("nft")
    lab = kernel_labs(plan.topology(), counters=False, timeout=0.3)
    D.setup_lab(lab, plan)
    return lab


def _ip(text: str) -> int:
    from iptexplain.core.addr import parse_ip

    return parse_ip(text, 4)[1]


def test_docker_28_to_29_class_in_the_kernel(kernel_labs):
    old_text = (FIXTURES / "moby28.5-usernet-portmap.v4.save").read_text()
    new_text = (FIXTURES / "moby29.0-usernet-portmap.v4.save").read_text()
    plan = D.plan_for("moby28.5-usernet-portmap.v4.save", old_text)
    host = plan.host_model()
    old, new = parse_text(old_text, "old.save"), parse_text(new_text, "new.save")
    res = diff_rulesets(Side(old), Side(new), Flow(family=4, proto="tcp", dport=8080, iniface="docker0"), host)
    (c,) = res.classes
    assert {f.kind for f in c.before} == {"delivered"}
    (after,) = c.after
    assert after.kind == "forwarded" and dict(after.nat)["dst"] == "192.0.2.2" and dict(after.nat)["dport"] == "80"
    # a container of the lab on docker0, to the host's docker0 address: inside the class
    peer = next(p for p in plan.peers if p.iface == "docker0")
    dst = plan.host_addr("docker0")
    probe = c.boxes[0].copy(src=point(_ip(peer.addr)), dst=point(_ip(dst)), dport=point(8080))
    assert any(meet(b, probe) for b in c.boxes)
    target = plan.owner("192.0.2.2")
    lab = _lab(kernel_labs, plan)
    try:
        lab.load(old_text, "nft")
        before = lab.send(KL.Flow(peer.name, dst, 8080, listen=(KL.HOST,), listen_port=8080))
        assert before.outcome == "delivered" and before.delivery.ns == KL.HOST, before.describe()
        lab.load(new_text, "nft")
        after_obs = lab.send(KL.Flow(peer.name, dst, 8080, listen=(target,), listen_port=80))
        assert after_obs.outcome == "delivered", after_obs.describe()
        d = after_obs.delivery
        assert (d.ns, d.dst, d.dport) == (target, "192.0.2.2", 80), after_obs.describe()
    finally:
        lab.close()


def test_ufw_bypass_in_the_kernel(kernel_labs):
    """reach says: a client ufw refuses on INPUT reaches the published port 8080 (DNAT sends it
    to FORWARD), and not a port of the host itself.  The kernel agrees."""
    text = (FIXTURES / "ufw-docker-combined.v4.save").read_text()
    plan = D.plan_for("ufw-docker-combined.v4.save", text)
    host = plan.host_model()
    rs = parse_text(text, "ufw-docker-combined.v4.save")
    res = reach(Side(rs), Flow(family=4, proto="tcp", iniface=plan.external), host)
    client = plan.peer(plan.client)
    ext = plan.host_addr()
    probe_pub = None
    for row in res.rows:
        if row.kind == PUBLISHED and row.dest.startswith("this host:8080 → 192.0.2.2:80"):
            (acc,) = [a for a in row.access if a.passed]
            probe_pub = acc
    assert probe_pub is not None and probe_pub.bypass
    me = point(_ip(client.addr))
    assert any(meet(b, b.copy(src=me)) for b in probe_pub.bypass_boxes)  # the client is among them
    closed = next(r for r in res.rows if r.kind == "host" and r.dest.startswith("this host:not 22,80"))
    refused = [a for a in closed.access
               if a.passed is False and any(meet(b, b.copy(src=me, dport=point(8081))) for b in a.boxes)]
    assert refused
    target = plan.owner("192.0.2.2")
    lab = _lab(kernel_labs, plan)
    try:
        lab.load(text, "nft")
        obs = lab.send(KL.Flow(plan.client, ext, 8080, listen=(target,), listen_port=80))
        assert obs.outcome == "delivered" and obs.delivery.ns == target, obs.describe()
        # trace --why for the same packet: ufw's rule is never reached, the packet went FORWARD;
        # the kernel's own trace of it holds no INPUT chain and no ufw-user-input
        t = trace_flow(rs, Flow(family=4, proto="tcp", src=client.addr, dst=ext, dport=8080), host)
        ((_, (answer,)),) = explain(t, find_rules(rs, "ufw-user-input:1", 4), rs).answers
        assert answer.verdict == NEVER_REACHED and "sent it to FORWARD" in answer.because[0]
        chains = obs.chains()
        assert chains is not None and ("filter", "FORWARD") in chains, obs.describe()
        assert not any(c in ("INPUT", "ufw-user-input") for _, c in chains), chains
        obs = lab.send(KL.Flow(plan.client, ext, 8081, listen=(KL.HOST,), listen_port=8081))
        assert obs.outcome == "dropped", obs.describe()
    finally:
        lab.close()


def test_accept_undone_by_a_later_nft_chain_in_the_kernel(kernel_labs):
    """lint says Docker's iptables-nft ACCEPTs are undone by firewalld's nft forward chain
    (priority filter + 10): container to container on docker0 (always), and the published
    port's container reached by its own address (partly: through the DNAT it gets in).  The
    examples sent through the kernel: the kernel's own trace shows Docker's rule accepting
    and firewalld's rule ending the packet after it."""
    seed = FIXTURES / "seed-docker.v4.save"
    firewalld = FIXTURES / "nft" / "src" / "firewalld-nftables-backend.nft"
    given = resolve([str(seed), str(firewalld)], None, 4, "auto",
                    ifaces=("eth0=198.51.100.1/24", "docker0=172.17.0.1/16"))
    res = accepts_undone(Side(given.ruleset, given.ipsets, given.backend), given.host, 4)
    by = {(u.kind, u.rule.chain, u.rule.number): u for u in res.undone}
    full, part = by[(UNDONE_ACCEPT, "FORWARD", 6)], by[(PARTLY_UNDONE, "DOCKER", 1)]
    # the lab's packets, inside the findings' packet sets
    c2c = point(_ip("172.17.0.6")), point(_ip("172.17.0.7")), point(80)
    assert any(meet(b, b.copy(src=c2c[0], dst=c2c[1], dport=c2c[2], proto=point(6), sport=point(40000)))
               for c in full.classes if c.scenario.flow.proto == "tcp" for b in c.boxes)
    direct = [c for c in part.classes if any(meet(b, b.copy(src=point(_ip("198.51.100.2")))) for b in c.boxes)]
    assert direct and direct[0].by_rule.chain == "filter_FWD_public"
    topo = KL.Topology(ifaces=[
        KL.HostIface("eth0", "198.51.100.1/24", peers=[KL.Peer("client", "198.51.100.2/24")]),
        KL.HostIface("docker0", "172.17.0.1/16", bridge=True,
                     peers=[KL.Peer("c1", "172.17.0.6/16"), KL.Peer("c2", "172.17.0.7/16")]),
    ])
    lab = kernel_labs(topo, cls=NftLab)
    lab.load_iptables(seed.read_text())
    lab.load_nft(firewalld.read_text())
    docker_accept = ("ip", "filter", "FORWARD")
    for flow, accepted_in in ((KL.Flow("c1", "172.17.0.7", 80, listen=("c2",)), docker_accept),
                              (KL.Flow("client", "172.17.0.6", 9525, listen=("c1",)), ("ip", "filter", "DOCKER"))):
        obs = lab.send(flow)
        assert obs.outcome in ("rejected", "dropped") and obs.delivered_to is None, obs.describe()
        keys = [s.key for s in obs.steps or []]
        acc = [i for i, k in enumerate(keys) if k[:3] == accepted_in and k[4] == "accept"]
        end = [i for i, k in enumerate(keys) if k[:3] == ("inet", "firewalld", "filter_FWD_public") and k[4] == "drop"]
        assert acc and end and acc[0] < end[-1] == len(keys) - 1, obs.describe()
    # the rest of DOCKER #1's packets get through: the published port, through the DNAT
    obs = lab.send(KL.Flow("client", "198.51.100.1", 9525, listen=("c1",)))
    assert obs.outcome == "delivered" and obs.delivered_to == "c1", obs.describe()
