"""Kernel-differential checking for nft rulesets: the tracer against ``nft monitor trace``.

For each plan of tests/nft_plans.py (a fixture of fixtures/nft/, the host it was written for,
flows through it) this module traces every flow with :func:`iptexplain.netfilter.tracer.trace_flow`
and compares it with what the kernel did (tests/nft_lab.py):

(a) the outcome: delivered to which namespace, with which addresses after NAT, or dropped /
    rejected;
(b) the path of the first packet, event by event, in the kernel's vocabulary: ``(family, table,
    chain, handle, verdict)`` for every rule that matched (``accept``, ``drop``, ``continue``,
    ``return``, ``jump X``, ``goto X``; NAT statements end in ``accept``, ``reject`` shows as
    ``drop``) and every base chain's ``policy``; nothing for the end of a regular chain.

The tracer reads what a user would give it: the fixture's ``nft -j list ruleset`` (which carries
the kernel's handles, so rules are compared by handle), or, for a mixed host, the
``iptables-save`` dump of the iptables-nft side with the native tables beside it; the
iptables rules' kernel handles are their positions in the listed chains.

A flow whose trace forks (``numgen``, a dynamic set, a rate limit) agrees when one of its
branches is what the kernel did; the plan says which flows must not fork.  A branch the tracer
cannot decide (an xtables target nft -j prints without options) agrees when its path up to that
rule is the kernel's; such flows are counted apart and are never decidable ones.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import kernel_lab as KL
import nft_fixtures
from nft_lab import NftStep
from nft_plans import Case, NftPlan
from iptexplain.graph import Ruleset
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.nft.json_reader import read_nft_json
from iptexplain.parse import parse_text
from test_tracer_kernel import host_model, owner_of, tracer_flow

Event = tuple[str, str, str, Optional[int], str]  # family, table, chain, handle, verdict

NAT_VERDICTS = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"}


# ---------------------------------------------------------------------------------------------
# What the tracer reads


def _handles(doc: dict[str, Any]) -> dict[tuple[str, str, str], list[int]]:
    """``(family, table, chain) -> [rule handles in order]`` of a JSON listing."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for o in doc["nftables"]:
        r = o.get("rule")
        if r is not None:
            out.setdefault((r["family"], r["table"], r["chain"]), []).append(r["handle"])
    return out


@dataclass
class TracerInput:
    ruleset: Ruleset
    handles: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    """Kernel handles of the iptables-save side's rules, by position."""


def tracer_input(plan: NftPlan, lazy: bool = False) -> TracerInput:
    """The fixture as the tracer reads it; ``lazy``: as ``iptexplain trace`` reads it, chains
    kept as text until the trace reaches them (iptexplain.nft.deferred)."""
    fx = nft_fixtures.fixture(plan.fixture)
    doc_text = Path(fx.json_path).read_text()
    doc = json.loads(doc_text)
    if fx.native_only or plan.json_alone:
        return TracerInput(read_nft_json(doc_text, Path(fx.json_path).name, lazy=lazy))
    # A mixed host as a user gives it: iptables-save of the iptables-nft side, and the native
    # tables (nft -j list ruleset without iptables-nft's tables, which iptables-save shows).
    save = "".join(s.text() for s in fx.sources if s.loader != "nft")
    rs = parse_text(save, "iptables-save")
    native = [s for s in fx.sources if s.loader == "nft"]
    nft = read_nft_json(_native_only(doc, [n.text() for n in native]), "nft.json", lazy=lazy)
    rs.nft_tables = nft.nft_tables
    return TracerInput(rs, _handles(doc))


def _native_only(doc: dict[str, Any], native_texts: list[str]) -> str:
    """The JSON document without the tables that iptables-nft made (those the native sources do
    not declare)."""
    names = set()
    for text in native_texts:
        for line in text.splitlines():
            w = line.split()
            if len(w) >= 3 and w[0] == "table":
                names.add((w[1], w[2]))
    keep = []
    for o in doc["nftables"]:
        (kind, v), = o.items()
        if kind == "metainfo" or (v.get("family"), v.get("table", v.get("name"))) in names:
            keep.append(o)
    return json.dumps({"nftables": keep})


# ---------------------------------------------------------------------------------------------
# The tracer's path in the kernel's vocabulary


def _table_key(table: str, family: int) -> tuple[str, str]:
    if " " in table:
        fam, name = table.split(" ", 1)
        return fam, name
    return ("ip" if family == 4 else "ip6"), table


def _verdict(v: str) -> str:
    v = v or ""
    if v.startswith(("JUMP:", "GOTO:")):
        return f"{v[:4].lower()} {v[5:]}"
    if v in NAT_VERDICTS:
        return "accept"
    return {"REJECT": "drop"}.get(v, v.lower())


def tracer_events(steps: Iterable[T.Step], family: int, inp: TracerInput) -> list[tuple[Event, bool]]:
    """``[(event, optional)]`` of a leaf's steps.  A rule matching only *some* of the packets
    that changes nothing (``detail["partial"]``: a limit's bucket decides) is optional."""
    out: list[tuple[Event, bool]] = []
    pending: Optional[tuple[str, str, str, Any, bool]] = None

    def handle_of(fam: str, table: str, chain: str, rule: Any) -> Optional[int]:
        h = getattr(rule, "handle", None)
        if h is not None:
            return h
        hs = inp.handles.get((fam, table, chain), [])
        n = getattr(rule, "number", 0)
        return hs[n - 1] if 0 < n <= len(hs) else None

    def flush(verdict: str = "continue") -> None:
        nonlocal pending
        if pending is not None:
            fam, t, c, r, opt = pending
            out.append(((fam, t, c, handle_of(fam, t, c, r), verdict), opt and verdict == "continue"))
            pending = None

    for s in steps:
        if s.kind == T.RULE and s.matched:
            flush()
            fam, t = _table_key(s.table, family)
            pending = (fam, t, s.chain, s.rule, bool(s.detail.get("partial")))
        elif s.kind in (T.JUMP, T.GOTO):
            flush(f"{'jump' if s.kind == T.JUMP else 'goto'} {s.detail['to']}")
        elif s.kind == T.VERDICT:
            flush(_verdict(s.verdict or ""))
        elif s.kind == T.RETURN and s.rule is not None:
            flush("return")
        elif s.kind == T.POLICY:
            flush()
            fam, t = _table_key(s.table, family)
            out.append(((fam, t, s.chain, None, (s.verdict or "ACCEPT").lower()), False))
        elif s.kind in (T.TABLE, T.HOOK, T.ROUTE, T.CONNTRACK):
            flush()
    flush()
    return out


def kernel_events(steps: Iterable[NftStep]) -> list[Event]:
    return [s.key for s in steps if s.kind in ("rule", "policy")]


def align(kernel: list[Event], tracer: list[tuple[Event, bool]], *, prefix: bool = False) -> bool:
    """The kernel's events are the tracer's, optional ones taken or left out (``prefix``: the
    tracer's events are a beginning of the kernel's)."""
    i = j = 0
    while j < len(tracer):
        ev, optional = tracer[j]
        if i < len(kernel) and kernel[i] == ev:
            i += 1
            j += 1
        elif optional:
            j += 1
        else:
            return False
    return prefix or i == len(kernel)


def undecided_agrees(kernel: list[Event], leaf: T.Leaf, family: int, inp: TracerInput) -> bool:
    """A leaf the tracer could not decide (a target it does not know: iptables-nft's ``xt
    target DNAT`` as nft -j prints it, without options) agrees when its path up to that rule is
    the beginning of the kernel's, and the kernel took that rule too."""
    events = tracer_events(leaf.steps, family, inp)
    if not events:
        return True
    *before, (last, _) = events
    if not align(kernel, before, prefix=True):
        return False
    n = sum(1 for _, opt in before if not opt)
    rest = kernel[n:]
    return bool(rest) and rest[0][:4] == last[:4]


# ---------------------------------------------------------------------------------------------
# Comparing one flow


def outcome_agrees(topo: KL.Topology, flow: KL.Flow, leaf: T.Leaf, obs: KL.Observation) -> bool:
    out = leaf.outcome
    if out.kind in (T.FORWARDED, T.SENT):
        if obs.outcome != "delivered" or obs.delivered_to != owner_of(topo, out.packet["dst"]):
            return False
    elif out.kind == T.DELIVERED:
        if (obs.outcome, obs.delivered_to) != ("delivered", KL.HOST):
            return False
    elif out.kind in (T.DROPPED, T.REJECTED):
        return obs.outcome == ("dropped" if out.kind == T.DROPPED else "rejected")
    else:
        return False
    if obs.delivery is not None and obs.delivered_to != flow.src_ns:
        if ipaddress.ip_address(obs.delivery.dst) != ipaddress.ip_address(out.packet["dst"]):
            return False
        src = str(out.packet["src"])
        if not any(c in src for c in ", -/") and ipaddress.ip_address(obs.delivery.src) != ipaddress.ip_address(src):
            # masquerade's address is the outgoing interface's: the tracer may say so in words
            return False
    return True


@dataclass
class Result:
    case: Case
    obs: KL.Observation
    leaves: list[T.Leaf]
    outcome_ok: bool
    path_ok: bool
    forked: bool
    why: str
    undecided: bool = False
    """The kernel's way is a leaf the tracer could not decide (its path agrees up to the rule it
    does not know): counted apart, never for a decidable flow."""

    @property
    def agrees(self) -> bool:
        return (self.outcome_ok and self.path_ok and (not self.forked or not self.case.decidable)
                and not (self.undecided and self.case.decidable))


def compare(plan: NftPlan, case: Case, inp: TracerInput, obs: KL.Observation) -> Result:
    flow = case.flow
    tr = trace_flow(inp.ruleset, tracer_flow(plan.topology, flow), host_model(plan.topology))
    leaves = list(tr.leaves())
    kernel = kernel_events(obs.steps or [])
    agreeing = [lf for lf in leaves if outcome_agrees(plan.topology, flow, lf, obs)]
    path_ok = [lf for lf in agreeing if align(kernel, tracer_events(lf.steps, flow.family, inp))]
    undecided = [lf for lf in leaves if lf.outcome.kind == T.UNDECIDED
                 and undecided_agrees(kernel, lf, flow.family, inp)]
    lines = [obs.describe(), "  kernel events:"] + [f"    {e}" for e in kernel]
    for n, lf in enumerate(leaves):
        lines.append(f"  tracer leaf {n}: {[c.text for c in lf.conditions]} {lf.outcome.kind}: "
                     f"{lf.outcome.summary}")
        lines += [f"    {e}{' (optional)' if o else ''}" for e, o in tracer_events(lf.steps, flow.family, inp)]
    return Result(case, obs, leaves, bool(agreeing) or bool(undecided), bool(path_ok) or bool(undecided),
                  len(leaves) > 1, "\n".join(lines), undecided=bool(undecided) and not path_ok)


@dataclass
class Report:
    fixture: str
    results: list[Result] = field(default_factory=list)

    def summary(self) -> str:
        n = len(self.results)
        agreed = sum(r.agrees for r in self.results)
        forked = sum(r.forked and not r.undecided for r in self.results)
        undecided = sum(r.undecided for r in self.results)
        return (f"{self.fixture}: {n} flows, {agreed} agreed ({forked} forked, kernel among the branches; "
                f"{undecided} undecided, path agreed up to the rule not understood)")

    def disagreements(self) -> list[Result]:
        return [r for r in self.results if not r.agrees]


def run_plan(lab: KL.Lab, plan: NftPlan) -> Report:
    """Each flow sent once; the kernel's path compared with the trace of the eager read and with
    the trace of the deferred read ``iptexplain trace`` makes (two results per flow)."""
    inps = [tracer_input(plan), tracer_input(plan, lazy=True)]
    assert any(type(c).__name__ == "DeferredNftChain" for t in inps[1].ruleset.nft_tables
               for c in t.chains.values()), "the deferred reader gave the fixture to the eager one"
    rep = Report(plan.name)
    for case in plan.cases:
        obs = lab.send(case.flow)
        for inp in inps:
            rep.results.append(compare(plan, case, inp, obs))
    return rep
