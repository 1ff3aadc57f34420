"""Listings read as a trace reads them (iptexplain.parse.listing_deferred): the layout scanned, each
chain's rows kept as text until the trace reaches the chain, each row read when looked at.

The answer key is the listing reader's (iptexplain.parse.listing) eager read of the same text:
once everything is read the rule graph is the same, rule for rule and line for line; the notes
and hidden parts are the same before anything is read; a trace gives the same JSON, word for word
(the deferred read adds only its own "lazy" note); an error is the same error at the same line,
raised when the row holding it is read.  The listings are the corpus's and fixtures' real ones,
and kube-proxy rulesets of bench/gen_kube.py printed by the real iptables in a throw-away network
namespace (tests/listing_ns.py).  What the scan cannot be sure of goes to the listing reader.
"""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path

import pytest

from iptexplain.core.errors import InputError
from iptexplain.ext import MATCHES, TARGETS, load_all
from iptexplain.ext.base import ChainJump
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.parse.deferred import GiveUp
from iptexplain.parse.listing import read_row_tail
from iptexplain.parse.listing_deferred import ListingChain, ListingRow, read_listing_deferred
from iptexplain.parse.listing_layout import _NOT_JUMPS, TAIL_MODULES, VOCABULARY
from iptexplain.render.json_out import trace_json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube  # noqa: E402
import listing_ns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/work/shared/corpus")
SEED = Path("/work/shared/seeds/000_0f7dba43e3b18fc2.txt")


def _listing_files() -> list[Path]:
    out = sorted((CORPUS / "generated").glob("*L")) + sorted((CORPUS / "listings").glob("*"))
    out += sorted(p for p in (ROOT / "fixtures" / "listing").rglob("*")
                  if p.is_file() and p.suffix not in (".save", ".S", ".json", ".md", ".restore"))
    out += [p for p in (ROOT / "fixtures").glob("*.txt")] + [SEED]
    return [p for p in out if p.is_file()]


FILES = _listing_files()


def _graph(rs) -> tuple:  # noqa: ANN001
    return tuple(
        (key, c.name, c.builtin, c.policy, c.counters, c.line, c.listed, c.policy_known, c.gaps, c.kernel_references,
         tuple((r.line, r.number, r.spec(), r.counters, r.jump, r.goto) for r in c.rules),
         tuple(r.line for r in c.references))
        for key, t in sorted(rs.tables.items()) for c in t.chains.values())


def _notes(rs) -> list:  # noqa: ANN001
    return [(n.kind, n.message, n.line) for n in rs.notes if n.kind != "lazy"]


def _read(text: str, name: str):  # noqa: ANN202
    """(eager ruleset or its error, deferred ruleset or its error)."""
    out = []
    for lazy in (False, True):
        try:
            out.append(parse_text(text, name, lazy=lazy))
        except InputError as e:
            out.append(e)
    return out


def _flows(text: str) -> list[Flow]:
    """Flows into the listing's own addresses and ports: a published port, a forwarded flow, one
    from the host, one to an address a row names (a service's ClusterIP in kube-proxy's)."""
    dsts = re.findall(r" (?:0\.0\.0\.0/0|[0-9.]+/[0-9]+) +([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+) ", text)[:2]
    ports = re.findall(r"dpt:([0-9]+)", text)[:2] or ["443"]
    flows = [Flow(4, "tcp", src="198.51.100.7", dst=dsts[0] if dsts else "192.0.2.10", dport=int(ports[0]),
                  iniface="eth0"),
             Flow(4, "tcp", src="10.0.0.5", dst="203.0.113.9", dport=80, iniface="eth1", outiface="eth0"),
             Flow(4, "udp", dst="192.0.2.53", dport=53, from_host=True)]
    if len(dsts) > 1:
        flows.append(Flow(4, "tcp", src="10.244.77.7", dst=dsts[1], dport=int(ports[-1]), iniface="cni0"))
    return flows


def _same_traces(eager, deferred, flows: list[Flow]) -> None:  # noqa: ANN001
    for flow in flows:
        docs = []
        for rs in (eager, deferred):
            doc = trace_json(trace_flow(rs, flow), rs)
            doc["notes"] = [n for n in doc["notes"] if n.get("kind") != "lazy"]
            docs.append(doc)
        assert docs[0] == docs[1], flow


def _check(text: str, name: str, flows: list[Flow] | None = None, must_defer: bool = False) -> bool:
    """The deferred read of ``text`` against the eager one; whether the scan took the text."""
    eager, deferred = _read(text, name)
    if isinstance(eager, InputError) or isinstance(deferred, InputError):
        assert isinstance(deferred, InputError) and isinstance(eager, InputError), (eager, deferred)
        assert (deferred.message, deferred.line) == (eager.message, eager.line)
        return False
    if deferred.deferred is None:
        assert not must_defer, "the scan gave up"
        assert _graph(deferred) == _graph(eager)
        return False
    assert deferred.format == eager.format and deferred.whole == eager.whole
    assert _notes(deferred) == _notes(eager)
    assert deferred.hidden == eager.hidden
    assert deferred.rule_count() == eager.rule_count()
    assert any(n.kind == "lazy" for n in deferred.notes)
    if flows:
        _same_traces(eager, deferred, flows)
    deferred.parse_all()
    assert _graph(deferred) == _graph(eager)
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_listings_read_as_the_listing_reader_reads_them(path: Path) -> None:
    text = path.read_text(errors="replace")
    _check(text, str(path), _flows(text))


def test_the_scan_takes_what_iptables_prints() -> None:
    taken = [p.name for p in FILES if _check(p.read_text(errors="replace"), str(p))]
    # -nvL, -nvxL, -nL, with and without --line-numbers, nat and filter, Docker, libvirt, kube
    assert len(taken) >= 20, taken
    assert any(n.endswith(".nL") for n in taken) and any(n.endswith(".nvL") for n in taken)


# -- kube-proxy rulesets, listed by the real iptables ----------------------------------------


@pytest.fixture(scope="module")
def kube_listings() -> tuple[list, dict]:
    reason = listing_ns.available()
    if reason is not None and os.environ.get("CI") != "true":
        pytest.skip(reason)
    services = gen_kube.make_services(60, seed=7)
    text = gen_kube.render(services)
    [res] = listing_ns.run_jobs([{"text": text, "family": 4, "backend": "nft", "tables": ["nat", "filter"],
                                  "forms": ["nvL", "nvxL", "nL"]}])
    assert res["rc"] == 0, res["stderr"]
    return services, res["listings"]


def _kube_flows(services: list) -> list[Flow]:
    out = []
    for s in services[::7]:
        out.append(Flow(4, s.proto, src="10.244.77.7", dst=s.cluster_ip, dport=s.port, iniface="cni0"))
        if s.node_port:
            out.append(Flow(4, s.proto, src="198.51.100.9", dst="192.0.2.1", dport=s.node_port, iniface="eth0"))
    return out


@pytest.mark.parametrize("form", ["nvL", "nvxL", "nL"])
def test_kube_proxy_listings_trace_as_the_eager_read(kube_listings, form: str) -> None:  # noqa: ANN001
    services, listings = kube_listings
    flows = _kube_flows(services)
    nat = listings["nat"][form]
    # The nat table's listing on its own (read as nat: its built-in chains say so), then with
    # the commands that printed it and filter's after it: one input, two tables.
    assert _check(nat, "nat.txt", flows, must_defer=True)
    opt = {"nvL": "-nvL --line-numbers", "nvxL": "-nvxL", "nL": "-nL"}[form]
    both = f"# iptables -t nat {opt}\n{nat}\n# iptables {opt}\n{listings['filter'][form]}"
    assert _check(both, "both.txt", flows, must_defer=True)


def test_kube_proxy_listing_reads_only_what_the_trace_reaches(kube_listings) -> None:  # noqa: ANN001
    services, listings = kube_listings
    rs = parse_text(listings["nat"]["nvL"], "nat.txt", lazy=True)
    assert rs.deferred is not None
    svc = next(s for s in services if len(s.endpoints) >= 2 and s.proto == "tcp")
    trace_flow(rs, Flow(4, "tcp", src="10.244.77.7", dst=svc.cluster_ip, dport=svc.port, iniface="cni0"))
    chains = list(rs.table("nat").chains.values())
    read = [c.name for c in chains if isinstance(c, ListingChain) and c.read]
    assert len(read) < len(chains) // 4
    services_chain = rs.table("nat").chains["KUBE-SERVICES"]
    # KUBE-SERVICES's index came from the rows' words: only the rows for this destination are read.
    parsed = [r for r in services_chain.rules if r.parsed]
    assert 0 < len(parsed) < len(services_chain.rules) // 4


def test_hidden_interfaces_are_filled_as_the_eager_fill_fills_them(kube_listings) -> None:  # noqa: ANN001
    """-nL hides -i/-o: kube-proxy's whole-chain shapes say its rules have none, each row decided
    when the trace looks at it, and the forks are the eager trace's."""
    services, listings = kube_listings
    eager, deferred = _read(listings["nat"]["nL"], "nat.txt")
    assert deferred.deferred is not None and "interfaces" in deferred.hidden
    flow = _kube_flows(services)[0]
    a, b = trace_flow(eager, flow), trace_flow(deferred, flow)
    assert trace_json(a, eager)["outcomes"] == trace_json(b, deferred)["outcomes"]
    looked = [r for r in eager.filled if r.chain.startswith("KUBE-SEP-")]
    assert looked and len(deferred.filled) < len(eager.filled)


# -- what the scan leaves to the listing reader --------------------------------------------------

_SMALL = """Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 DOCKER     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ADDRTYPE match dst-type LOCAL

Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination

Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 MASQUERADE  0    --  *      !docker0  172.17.0.0/16        0.0.0.0/0

Chain DOCKER (1 references)
 pkts bytes target     prot opt in     out     source               destination
    0     0 RETURN     0    --  docker0 *       0.0.0.0/0            0.0.0.0/0
    0     0 DNAT       6    --  !docker0 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:172.17.0.2:80
"""


def test_a_small_listing_is_deferred() -> None:
    assert _check(_SMALL, "small.txt", [Flow(4, "tcp", src="198.51.100.7", dst="192.0.2.1", dport=8080, iniface="eth0")],
                  must_defer=True)


@pytest.mark.parametrize("change", [
    lambda t: t.replace("Chain INPUT", "Here is the nat table:\nChain INPUT"),  # prose
    lambda t: t.replace("\n", "\r\n"),  # CR LF
    lambda t: t.replace("DOCKER     0", "LOG        0"),  # a target the scan does not know
    lambda t: t.replace("ADDRTYPE match dst-type LOCAL", "limit: avg 3/min burst 5"),  # a phrase it does not
    lambda t: t.replace("to:172.17.0.2:80", "to:172.17.0.300:80"),  # words its module cannot read back
    lambda t: t.replace("dpt:8080", "dpt:80800"),
    lambda t: t.replace("172.17.0.0/16", "docker-net"),  # a host name (-L)
    lambda t: t.replace("to:172.17.0.2:80", "to:172.17.0.2:80 /* cut"),  # a row wrapped by the terminal
    lambda t: t + "\n" + t,  # the table listed twice
    lambda t: t.replace("DNAT       6", "KUBE-X     6"),  # a jump to a chain not listed
    lambda t: t.replace("0.0.0.0/0            0.0.0.0/0            tcp", "::/0  ::/0  tcp"),  # IPv6
    lambda t: t.rstrip("\n"),  # cut off inside the last row
    lambda t: t.replace(" pkts bytes target     prot opt in     out     source               destination\n    0     0 RETURN", "    0     0 RETURN"),  # no heading
], ids=["prose", "crlf", "LOG", "limit", "bad-to", "bad-port", "hostname", "wrapped", "twice", "unlisted", "ipv6", "cut", "no-heading"])
def test_what_the_scan_is_not_sure_of_goes_to_the_listing_reader(change) -> None:  # noqa: ANN001
    text = change(_SMALL)
    with pytest.raises(GiveUp):
        read_listing_deferred(text, "x.txt")
    _check(text, "x.txt")  # and the lazy read is the eager one


def test_the_seed_listing_goes_to_the_listing_reader() -> None:
    """The seed's listings repeat the filter table under a heading that says "nat": only the
    listing reader compares two listings of one table."""
    text = SEED.read_text()
    eager, deferred = _read(text, "seed")
    assert deferred.deferred is None
    assert _graph(deferred) == _graph(eager) and _notes(deferred) == _notes(eager)


def test_an_error_waits_for_its_row_and_reads_as_the_eager_one() -> None:
    text = _SMALL.replace("!docker0 *       0.0.0.0/0", "!docker0 *       10.0.0.999")
    eager, deferred = _read(text, "bad.txt")
    assert isinstance(eager, InputError)
    assert not isinstance(deferred, InputError) and deferred.deferred is not None
    # A trace that does not reach the row does not read it; reading every row (show) finds it.
    trace_flow(deferred, Flow(4, "udp", src="198.51.100.7", dst="192.0.2.1", dport=53, from_host=True))
    with pytest.raises(InputError) as e:
        deferred.parse_all()
    assert (e.value.message, e.value.line, str(e.value)) == (eager.message, eager.line, str(eager))
    assert e.value.line == 18  # the DNAT row


def test_the_table_of_a_listing_is_inferred_as_the_listing_reader_infers_it() -> None:
    filt = _SMALL.replace("Chain PREROUTING", "Chain FORWARD").replace("Chain POSTROUTING", "Chain XPOST")
    for text in (_SMALL, filt, "# iptables -t mangle -nvL\n" + _SMALL, "# ip6tables -nvL\n" + _SMALL):
        _check(text, "t.txt")
    with pytest.raises(InputError) as e:
        parse_text(filt, "t.txt", table="raw", lazy=True)
    with pytest.raises(InputError) as e2:
        parse_text(filt, "t.txt", table="raw")
    assert str(e.value) == str(e2.value)


# -- the scan's vocabulary -------------------------------------------------------------------


@pytest.mark.parametrize("tail,target", [
    ("/* default/kubernetes:https cluster IP */ tcp dpt:443", "KUBE-SVC-X"),
    ("/* ns/svc:dns */ udp spt:53 dpt:53", "ACCEPT"),
    ("sctp dpts:1000:2000", "RETURN"),
    ("statistic mode random probability 0.33333333349", "KUBE-SEP-X"),
    ("ADDRTYPE match src-type LOCAL", "KUBE-MARK-MASQ"),
    ("mark match ! 0x4000/0x4000", "RETURN"),
    ("ctstate RELATED,ESTABLISHED", "ACCEPT"),
    ("state NEW,INVALID", "DROP"),
    ("multiport dports 80,443,8000:8080", "ACCEPT"),
    ("/* a */ tcp to:10.244.1.2:8080", "DNAT"),
    ("to:198.51.100.1:1024-2048", "SNAT"),
    ("MARK or 0x4000", "MARK"),
    ("MARK xor 0x4000", "MARK"),
    ("MARK set 0x4000", "MARK"),
    ("MARK xset 0x4000/0xffff", "MARK"),
    ("MARK and 0xffffbfff", "MARK"),
    ("/* masq */ masq ports: 1024-65535 random-fully", "MASQUERADE"),
    ("random-fully", "MASQUERADE"),
    ("/* has no endpoints */ tcp dpt:443 reject-with icmp-port-unreachable", "REJECT"),
    ("", "MASQUERADE"),
])
def test_every_phrase_the_scan_takes_is_read_back_whole(tail: str, target: str) -> None:
    """A row the scan takes carries nothing the listing reader would report over all rows: no
    text left unread, no option lost, no note."""
    _goto, matches, tg, unread, losses = read_row_tail(tail, target, 4, "tcp")
    assert not unread and not losses
    assert not any(getattr(e, "may_note", False) for e in (*matches, tg) if e is not None)
    # Each module it uses is in the vocabulary a chain's may_use() looks for, by a word it shows.
    for e in (*matches, tg):
        if e is not None and not isinstance(e, ChainJump):
            assert e.name in VOCABULARY and any(w in f"{target} {tail}".split() for w in VOCABULARY[e.name]), e
    row = f"    0     0 {target:10} 6    --  *      *       0.0.0.0/0            10.96.0.1            {tail}\n"
    text = f"Chain X (0 references)\n pkts bytes target     prot opt in     out     source               destination\n{row}"
    if target.startswith("KUBE-"):
        text += f"\nChain {target} (1 references)\n pkts bytes target     prot opt in     out     source               destination\n"
    rs = read_listing_deferred(text, "p.txt", table="nat")
    rs.parse_all()


def test_the_phrases_modules_are_the_only_ones_with_their_words() -> None:
    """A deferred listing's rows are read with the modules of its phrases loaded, not all ~90:
    every module that prints a word the phrases start with (or a target's words) is one of them,
    the only one with that word."""
    load_all()
    words = {"/*", "tcp", "udp", "sctp", "statistic", "ADDRTYPE", "mark", "ctstate", "state", "multiport",
             "to:", "to", "masq", "ports:", "random-fully", "random", "MARK", "reject-with", "!"}
    homes: dict[str, list[str]] = {}
    for cls in dict.fromkeys(MATCHES.values()):
        for kw in set(cls.listing_keywords) & words:
            homes.setdefault(kw, []).append(cls.__module__.rsplit(".", 1)[1])
    assert all(len(v) == 1 for v in homes.values()), homes
    assert sorted({m for v in homes.values() for m in v}) == sorted(TAIL_MODULES)


def test_the_target_column_names_a_jump_as_the_listing_reader_does() -> None:
    load_all()
    assert set(TARGETS) <= _NOT_JUMPS


def test_raw_keys_claim_only_what_the_row_requires(kube_listings) -> None:  # noqa: ANN001
    _services, listings = kube_listings
    for form in ("nvL", "nL"):
        rs = parse_text(listings["nat"][form], "nat.txt", lazy=True)
        claimed = 0
        for c in rs.table("nat").chains.values():
            for r in c.rules:
                keys = r.raw_keys(32)
                assert isinstance(r, ListingRow) and keys is not None
                r.parse()
                d = r.header.dst
                want_dst = d.value if d is not None and not r.header.dst_inv and d.mask == 0xFFFFFFFF else None
                ports = [m.get("dport") for m in r.matches if m.name in ("tcp", "udp", "sctp")]
                want_port = ports[0].value[0] if ports and ports[0] is not None and not ports[0].invert else None
                assert keys[0] in (None, want_dst) and keys[1] in (None, want_port), (r.line, keys)
                claimed += keys[0] is not None
        assert claimed >= 60


# -- text the scan almost takes --------------------------------------------------------------

_WORDS = ("DNAT", "SNAT", "MARK", "REJECT", "MASQUERADE", "ACCEPT", "RETURN", "LOG", "KUBE-X", "tcp", "udp", "0", "6",
          "--", "-f", "!", "*", "any", "0.0.0.0/0", "10.0.0.1", "anywhere", "::/0", "/*", "*/", "dpt:80", "dpt:99999",
          "to:1.2.3.4:80", "to:1.2.3.400", "ctstate", "NEW", "state", "mark", "match", "0x4000", "random-fully",
          "masq", "ports:", "1024-65535", "reject-with", "icmp-port-unreachable", "5K", "Chain", "(policy", "DROP",
          "packets,", "bytes)", "references)", "[goto]", "statistic", "mode", "random", "probability", "0.5",
          "ADDRTYPE", "src-type", "LOCAL", "multiport", "dports", "80,443", "spt:53", "icmp6", "localhost", "x.x", "{{")


def _mutants(text: str, n: int, seed: int) -> list[str]:
    """``text`` with one word replaced, inserted or dropped, or one line repeated or dropped."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        lines = text.split("\n")
        k = rnd.randrange(len(lines))
        words = lines[k].split(" ")
        op = rnd.random()
        if op < 0.6:
            words[rnd.randrange(len(words))] = rnd.choice(_WORDS)
        elif op < 0.75:
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(_WORDS))
        elif op < 0.85:
            del words[rnd.randrange(len(words))]
        if op < 0.85:
            lines[k] = " ".join(words)
        elif op < 0.93:
            lines.insert(k, lines[rnd.randrange(len(lines))])
        else:
            del lines[k]
        out.append("\n".join(lines))
    return out


def test_text_the_scan_almost_takes_reads_as_the_listing_reader_reads_it(kube_listings) -> None:  # noqa: ANN001
    """Listings with one word or line changed at random: each is left to the listing reader, or
    read into the same graph, notes and hidden parts -- an error the eager read reports is the
    deferred read's when the row is read."""
    _services, listings = kube_listings
    taken = 0
    for base in (_SMALL, listings["filter"]["nvL"], listings["filter"]["nL"]):
        for text in _mutants(base, 120, seed=len(base)):
            eager, deferred = _read(text, "m.txt")
            if isinstance(deferred, InputError) or deferred.deferred is None:
                assert isinstance(deferred, InputError) == isinstance(eager, InputError)
                if isinstance(eager, InputError):
                    assert str(eager) == str(deferred)
                continue
            taken += 1
            if isinstance(eager, InputError):
                with pytest.raises(InputError) as e:
                    deferred.parse_all()
                assert str(e.value) == str(eager)
                continue
            assert (_notes(deferred), deferred.hidden, deferred.rule_count()) == \
                (_notes(eager), eager.hidden, eager.rule_count())
            deferred.parse_all()
            assert _graph(deferred) == _graph(eager)
    assert taken >= 40
