"""Live reading of a host whose nf_tables holds native tables beside iptables-nft's.

As tests/test_live.py: a child process builds the host in a throw-away network namespace (the
seed's Docker rules with iptables-nft-restore, a native table with nft), then reads it live
(``read_live``: ``iptables-nft-save -c`` and ``nft -j list ruleset``, read-only), takes a
snapshot, and traces a flow there.  The native table is read and traced beside iptables'
tables; iptables-nft's own tables, which nft lists too, are read once, from iptables-nft-save.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from iptexplain.snapshot import open_snapshot
from test_live import SEED, TOPOLOGY, canonical, in_namespace, load_request, netns  # noqa: F401
from iptexplain.parse import parse_text

MYFW = ("table inet myfw {\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter + 10; policy accept;\n"
        "\t\ttcp dport 9999 counter drop comment \"closed\"\n"
        "\t}\n"
        "}\n")

CODE = r'''
run(["nft", "-f", "-"], input=req["nft"])
from iptexplain.errors import InputError
from iptexplain.live import read_live
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.render.save import save_ruleset
from iptexplain.snapshot import dumps, make_snapshot
rs, host = read_live(4)
out["live"] = {
    "save": save_ruleset(rs, counters=False),
    "nft_tables": [t.name for t in rs.nft_tables],
    "notes": [[n.kind, n.message] for n in rs.notes],
}
outcomes = {}
for port in (9999, 22):
    tr = trace_flow(rs, T.Flow(4, "tcp", "198.51.100.7", "198.51.100.1", None, port, iniface="eth0"), host)
    outcomes[port] = sorted({(lf.outcome.kind, lf.outcome.summary) for lf in tr.leaves()})
out["outcomes"] = outcomes
out["snapshot"] = dumps(make_snapshot(4))
'''


def _need_nft() -> None:
    if shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nft is not installed under CI")
        pytest.skip("nft is not installed")


@pytest.fixture(scope="module")
def answer(netns) -> dict:
    _need_nft()
    req = load_request(SEED, "nft")
    req["code"] = CODE
    req["nft"] = MYFW
    ans = in_namespace(req)
    assert "error" not in ans, ans.get("error")
    return ans


def test_native_table_is_read_beside_iptables_tables(answer: dict) -> None:
    live = answer["live"]
    # iptables-nft's ip filter and ip nat, which nft lists too, are not read twice
    assert live["nft_tables"] == ["inet myfw"]
    assert canonical(parse_text(live["save"], "live"), counters=False) == canonical(
        parse_text(SEED.read_text(), "seed"), counters=False)
    notes = [m for k, m in live["notes"]]
    assert "read 1 nftables table with nft -j list ruleset: inet myfw" in notes
    assert not any("iptexplain does not read them" in m for m in notes)


def test_live_trace_goes_through_the_native_table(answer: dict) -> None:
    closed = answer["outcomes"]["9999"]
    assert [k for k, _ in closed] == ["dropped"] and "inet myfw" in closed[0][1]
    assert [k for k, _ in answer["outcomes"]["22"]] == ["delivered"]


def test_snapshot_keeps_the_native_tables(answer: dict) -> None:
    doc = json.loads(answer["snapshot"])
    assert doc["nftables"]["source"] == "nft -j list ruleset"
    assert '"name": "myfw"' in doc["nftables"]["text"]
    snap = open_snapshot(answer["snapshot"], "host.snap")
    assert [t.name for t in snap.ruleset.nft_tables] == ["inet myfw"]
    assert canonical(snap.ruleset, counters=False) == canonical(parse_text(SEED.read_text(), "seed"),
                                                                counters=False)
    rule = snap.ruleset.nft_tables[0].chains["input"].rules[0]
    assert rule.handle is not None and rule.source == "host.snap[nft -j list ruleset]"
