"""Who decided a trace's outcome, and how to say it: words shared by every view and analysis.

The rich tree (:mod:`iptexplain.render.trace_view`), the JSON document, the Graphviz drawing and
the analyses (diff, reach, why, lint) all name the outcome and the rule or policy responsible
the same way; it lives here, under all of them, because which rule decided is a reading of
the trace's steps (a nat chain only chooses a translation), not a matter of presentation.  This module holds those
words and needs no rich, so that ``trace --json`` on a kube-proxy dump does not import a
terminal toolkit it never uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iptexplain.netfilter.trace import (
    DELIVERED, DROPPED, FORWARDED, PASSED, POLICY, QUEUED, REJECTED, SENT, TABLE, UNDECIDED, VERDICT,
    Leaf,
    Outcome, Step, Trace,
)

OUTCOME_WORDS = {
    DELIVERED: "delivered locally",
    FORWARDED: "forwarded",
    SENT: "sent",
    DROPPED: "dropped",
    REJECTED: "rejected",
    QUEUED: "queued to user space",
    UNDECIDED: "undecided",
}


def rule_ref(rule: Any) -> str:
    """``filter DOCKER #1 (rules.save:18)``: where a rule lives, in words a user can grep."""
    if rule is None:
        return ""
    return f"{rule.table} {rule.chain} #{rule.number} ({rule.where()})"


_PACKET_KEYS = ("proto", "src", "sport", "dst", "dport", "iniface", "outiface", "mark", "ctstate", "state")


def format_packet(packet: dict[str, Any]) -> str:
    """A packet dict (``src``, ``dport``…) as one line: ``tcp 10.0.0.1:4000 → 10.0.0.2:80``."""
    if not packet:
        return ""
    src = str(packet.get("src") or "*")
    dst = str(packet.get("dst") or "*")
    if packet.get("sport") not in (None, "", "0-65535", "*"):
        src += f":{packet['sport']}"
    if packet.get("dport") not in (None, "", "0-65535", "*"):
        dst += f":{packet['dport']}"
    parts = [str(packet.get("proto") or "any-proto"), f"{src} → {dst}"]
    if packet.get("iniface"):
        parts.append(f"in {packet['iniface']}")
    if packet.get("outiface"):
        parts.append(f"out {packet['outiface']}")
    mark = packet.get("mark")
    if mark not in (None, "", 0):
        parts.append(f"mark 0x{mark:x}" if isinstance(mark, int) else f"mark {mark}")
    for k, v in packet.items():
        if k not in _PACKET_KEYS and v not in (None, ""):
            parts.append(f"{k} {v}")
    return " ".join(parts)


@dataclass(frozen=True)
class Decider:
    """What decided an outcome: a rule, or a built-in chain's policy (``rule`` is None)."""

    text: str  # "filter DOCKER #1 (rules.save:18)" / "policy DROP of filter FORWARD (rules.save:6)"
    rule: Any = None
    table: str = ""
    chain: str = ""
    policy: str | None = None
    where: str = ""  # FILE:LINE of the rule or of the policy


def find_decider(leaf_steps: list[Step], outcome: Outcome, ruleset: Any = None,
                 family: int = 4) -> Decider | None:
    """Who decided.  The outcome's rule when the tracer names one.  Otherwise, from the steps:
    for a packet that got through, the last ACCEPT (rule or policy) of a filtering table -- nat
    verdicts only choose a translation, they filter nothing; for a blocked packet, the last
    DROP/REJECT (rule or policy).  An nft base chain's type says the same as iptables' table
    name: a chain of ``type nat`` only chooses a translation."""
    if outcome.rule is not None:
        r = outcome.rule
        return Decider(rule_ref(r), r, r.table, r.chain, None, r.where())
    decisions: list[tuple[Decider, str, str]] = []  # (who, verdict, the kind of table or chain)
    kind = ""
    for st in leaf_steps:
        if st.kind == TABLE:
            kind = (st.detail or {}).get("type") or st.table  # nft: filter/nat/route; else the table
        elif st.kind == VERDICT and st.rule is not None and st.verdict:
            r = st.rule
            decisions.append((Decider(rule_ref(r), r, r.table, r.chain, None, r.where()), st.verdict, kind))
        elif st.kind == POLICY:
            pol = st.verdict or str((st.detail or {}).get("policy", "")) or "?"
            who = f"policy {pol} of {st.table} {st.chain}".replace("  ", " ")
            where = _chain_where(ruleset, family, st.table, st.chain)
            decisions.append((Decider(f"{who} ({where})" if where else who, None, st.table, st.chain,
                                      pol, where), pol, kind))
    if outcome.kind in PASSED:
        accepts = [(d, k) for d, v, k in decisions if v == "ACCEPT" and "nat" not in (d.table, k)]
        filtering = [d for d, k in accepts if k in ("filter", "security") or d.table in ("filter", "security")]
        pick = filtering or [d for d, _ in accepts]
        return pick[-1] if pick else None
    if outcome.kind in (DROPPED, REJECTED):
        blocks = [d for d, v, _ in decisions if v in ("DROP", "REJECT")]
        return blocks[-1] if blocks else None
    return None


def responsible(leaf_steps: list[Step], outcome: Outcome, ruleset: Any = None, family: int = 4) -> str:
    d = find_decider(leaf_steps, outcome, ruleset, family)
    return d.text if d is not None else ""


def outcome_sentence(outcome: Outcome, leaf_steps: list[Step] | None = None) -> str:
    """``forwarded to 172.17.0.6:9525 via docker0``: the tracer's summary, or one built here."""
    if outcome.summary:
        text = outcome.summary
    else:
        text = OUTCOME_WORDS.get(outcome.kind, outcome.kind)
        if outcome.kind == FORWARDED and outcome.iface:
            text += f" via {outcome.iface}"
        if outcome.kind == REJECTED and outcome.reply:
            text += f" with {outcome.reply}"
    return text


def _chain_where(ruleset: Any, family: int, table: str, chain: str) -> str:
    """``rules.save:9``: the line that sets a built-in chain's policy."""
    t = ruleset.table(table, family) if ruleset is not None else None
    c = t.chain(chain) if t is not None else None
    if c is None or not c.line:
        return ""
    # the chain's or table's own input (a live host's IPv4 tables come from iptables-nft-save), as
    # its rules' references say it: one reference format for rules and policies alike
    return c.located(getattr(t, "source", "") or ruleset.source)


_VERB = {
    DELIVERED: "accepted by", FORWARDED: "accepted by", SENT: "accepted by",
    DROPPED: "dropped by", REJECTED: "rejected by", QUEUED: "queued by", UNDECIDED: "at",
}


def decided_by(outcome: Outcome, leaf_steps: list[Step], ruleset: Any = None, family: int = 4) -> str:
    """``accepted by filter DOCKER #1 (rules.save:18)``, ``dropped by policy DROP of filter
    FORWARD (rules.save:9)``; empty when nothing in the ruleset decided."""
    who = responsible(leaf_steps, outcome, ruleset, family)
    return f"{_VERB.get(outcome.kind, 'by')} {who}" if who else ""


def ordinary_leaves(trace: Trace) -> list[Leaf]:
    """The ways ordinary packets take: every way but those only edge packets take (source port 0,
    a martian source, a broadcast destination…, see :mod:`iptexplain.netfilter.edges`) -- unless
    every way is an edge one.  The answer and the exit status are theirs."""
    leaves = list(trace.leaves())
    ordinary = [lf for lf in leaves if not lf.edge]
    return ordinary or leaves
