"""Reading every rule of a deferred read (``parse_all``: lint, a combined paste) is linear: the
line numbers are counted from where the last chain read ended, in whatever order the chains are
read, and every chain's hooks come from one walk down the jumps -- with the same results as the
per-chain walk back a trace makes and the same rules as the eager reader's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iptexplain.graph import BUILTIN_CHAINS
from iptexplain.parse.deferred import read_deferred
from iptexplain.parse.save import parse_save

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _lines(rs) -> dict:
    return {(t.name, c.name): [(r.line, r.number, r.spec()) for r in c.rules]
            for t in rs.tables.values() for c in t.chains.values()}


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_chains_read_in_any_order_have_the_eager_line_numbers(order: str) -> None:
    text = gen_kube.render(gen_kube.make_services(60, 3))
    eager = _lines(parse_save(text, "k.save"))
    rs = read_deferred([text[:len(text) // 2 + text[len(text) // 2:].find("\n") + 1],
                        text[len(text) // 2 + text[len(text) // 2:].find("\n") + 1:]], "k.save")
    chains = [c for t in rs.tables.values() for c in t.chains.values()]
    if order == "reversed":
        chains.reverse()
    else:
        chains = chains[1::2] + chains[0::2]
    for c in chains:
        c.rules  # noqa: B018 -- reads the deferred chain
    assert _lines(rs) == eager


@pytest.mark.parametrize("name", ["kube-proxy-k8s-node-flannel.v4.save", "k3s-node.v4.save-c", "firewalld-iptables-backend.v4.save",
                                  "docker20-containers.v4.save"])
def test_hooks_from_the_jumps_equal_the_walk_back(name: str) -> None:
    text = (FIXTURES / name).read_text()
    walked = read_deferred([text], name)
    expected = {(t.name, c): walked.deferred.hooks_of(t, c) for t in walked.tables.values() for c in t.chains}
    assert any(h for (t, c), h in expected.items() if c not in BUILTIN_CHAINS[t]), "user chains reached from hooks"
    rs = read_deferred([text], name)
    book = rs.deferred
    rs.parse_all()  # reads every chain, links, and takes every chain's hooks from the jumps
    assert book.hooks == expected
