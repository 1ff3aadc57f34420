"""conntrack: the connection's state, status, tuples and direction (libxt_conntrack)."""

from __future__ import annotations

from iptexplain.core.addr import parse_address
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import CT_STATES, Decision, masked_set, point, proto_text, span
from iptexplain.core.protocols import PROTO_NUMBERS, canonical_proto, proto_number
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types
from iptexplain.ext.libxt_state import fmt_states, parse_states

CTSTATE_ORDER = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
CTSTATUS_ORDER = ("NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")

ctstates = OptType(
    "ctstates",
    lambda a: parse_states(a[0], CTSTATE_ORDER),
    lambda v: [fmt_states(v, CTSTATE_ORDER)],
)


def _status(text: str) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w.upper() not in CTSTATUS_ORDER:
            raise OptionError(f"Bad ctstatus \"{w}\"")
        out.add(w.upper())
    return frozenset(out)


ctstatus = OptType("ctstatus", lambda a: _status(a[0]), lambda v: [",".join(s for s in CTSTATUS_ORDER if s in v)])
address = OptType("address", lambda a: parse_address(a[0]), lambda v: [_fmt_ctaddr(v)])


def _ctproto(text: str) -> str:
    p = canonical_proto(text)
    if p is None:
        raise OptionError("conntrack: --ctproto all is meaningless")
    return p


def _fmt_ctproto(name: str) -> str:
    """iptables-save prints the protocol number (``--ctproto 6``)."""
    return str(PROTO_NUMBERS.get(name, name))


def _fmt_ctaddr(a) -> str:
    """conntrack prints a host without ``/32`` (``/128``), a network with its prefix length."""
    return a.host_str() if a.prefixlen == (32 if a.family == 4 else 128) else str(a)


ctproto = OptType("ctproto", lambda a: _ctproto(a[0]), lambda v: [_fmt_ctproto(v)])


@register
class Conntrack(Match):
    name = "conntrack"
    options = (
        Opt("ctstate", "--ctstate", ctstates),
        Opt("ctproto", "--ctproto", ctproto),
        Opt("ctorigsrc", "--ctorigsrc", address),
        Opt("ctorigdst", "--ctorigdst", address),
        Opt("ctreplsrc", "--ctreplsrc", address),
        Opt("ctrepldst", "--ctrepldst", address),
        Opt("ctorigsrcport", "--ctorigsrcport", types.portrange),
        Opt("ctorigdstport", "--ctorigdstport", types.portrange),
        Opt("ctreplsrcport", "--ctreplsrcport", types.portrange),
        Opt("ctrepldstport", "--ctrepldstport", types.portrange),
        Opt("ctstatus", "--ctstatus", ctstatus),
        Opt("ctexpire", "--ctexpire", types.uintrange),
        Opt("ctdir", "--ctdir", types.choice("ORIGINAL", "REPLY"), invert=False),
    )

    # -- the -L face (conntrack_dump) ----------------------------------------------------------
    # print writes the options in this order, each as " [!] ctKEY VALUE".
    listing_keywords = ("ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst",
                        "ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport",
                        "ctstatus", "ctexpire", "ctdir")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out: list[str] = []
        for key in self.listing_keywords:
            v = self.get(key)
            if v is None:
                continue
            if key == "ctdir":
                out.append(f"ctdir {v.value}")
                continue
            if v.invert:
                out.append("!")
            val = v.value
            if key == "ctstate":
                text = fmt_states(val, CTSTATE_ORDER)
            elif key == "ctstatus":
                text = ",".join(s for s in CTSTATUS_ORDER[1:] if s in val) or "NONE"
            elif key == "ctproto":
                text = str(PROTO_NUMBERS.get(val, val))
            elif key in ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"):
                text = "anywhere" if (not numeric and val.value == 0) else val.listing_str()
            else:  # ports and expiry: "lo" or "lo:hi"
                text = str(val[0]) if val[0] == val[1] else f"{val[0]}:{val[1]}"
            out.append(f"{key} {text}")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Conntrack":
        order = cls.listing_keywords
        opts: list = []
        at = 0
        while True:
            start = tail.pos
            inv = tail.invert()
            w = tail.peek()
            if w is None or w not in order or order.index(w) < at:
                tail.pos = start
                break
            at = order.index(w) + 1
            tail.pos += 1
            value = tail.take()
            if w in ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst") and value == "anywhere":
                value = "::/0" if tail.family == 6 else "0.0.0.0/0"
            opts.append(("--" + w, inv, [value]))
        if not opts:
            raise OptionError("not a conntrack match")
        return cls.build(opts, spelled="conntrack")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The connection's state, status, tuples and direction (xt_conntrack's conntrack_mt).

        The original tuple is what conntrack saw first (before DNAT), the reply tuple carries
        the NAT; an untracked or invalid packet matches only a pure ``--ctstate`` test.
        """
        conn = ctx.conn
        tests = []
        v = self.get("ctstate")
        if v is not None:
            real = frozenset(s for s in v.value if s in CT_STATES)
            virtual = {s for s in ("SNAT", "DNAT") if s in v.value and s in conn.nat and conn.nat[s]}

            def state(p, v=v, real=real, virtual=virtual):
                if virtual:
                    hit = not v.invert
                    return Decision(p if hit else None, None if hit else p,
                                    f"connection has {','.join(sorted(virtual))}")
                return Decision.states(p, "ctstate", real, v.invert, "ctstate")

            tests.append(state)
        others = [k for k, _ in self.values if k != "ctstate"]
        if others:
            def tracked(p):
                bad = p.ctstate & {"INVALID", "UNTRACKED"}
                if not bad:
                    return Decision.all(p, "tracked connection")
                if bad == p.ctstate:
                    return Decision.none(p, f"{'/'.join(sorted(bad))}: no connection to compare")
                return Decision.states(p, "ctstate", p.ctstate - bad, False, "ctstate")

            tests.append(tracked)
        v = self.get("ctproto")
        if v is not None:
            tests.append(lambda p, v=v: Decision.split(p, "proto", point(proto_number(v.value)), v.invert,
                                                         "ctproto", show=proto_text))
        reply = conn.reply_tuple()
        for key, side, what, is_addr in (
            ("ctorigsrc", "src", "ctorigsrc", True), ("ctorigdst", "dst", "ctorigdst", True),
            ("ctreplsrc", "rsrc", "ctreplsrc", True), ("ctrepldst", "rdst", "ctrepldst", True),
            ("ctorigsrcport", "sport", "ctorigsrcport", False), ("ctorigdstport", "dport", "ctorigdstport", False),
            ("ctreplsrcport", "rsport", "ctreplsrcport", False), ("ctrepldstport", "rdport", "ctrepldstport", False),
        ):
            v = self.get(key)
            if v is None:
                continue
            if is_addr:
                accept = masked_set(v.value.value, v.value.mask, pkts.bits)
                show = str(v.value)
            else:
                accept = span(*v.value)
                show = f"{v.value[0]}" if v.value[0] == v.value[1] else f"{v.value[0]}:{v.value[1]}"
            if side.startswith("r"):
                have = reply[{"rsrc": "src", "rdst": "dst", "rsport": "sport", "rdport": "dport"}[side]]
                tests.append(lambda p, have=have, accept=accept, v=v, what=what, show=show:
                             Decision.against(p, have, accept, v.invert, what, show))
            else:
                field = side
                orig = {"src": conn.orig_src, "dst": conn.orig_dst, "sport": conn.orig_sport,
                        "dport": conn.orig_dport}[field]
                if orig == getattr(pkts, field) or not orig:
                    # Nothing rewrote this field yet: the original tuple is the packet's own.
                    tests.append(lambda p, field=field, accept=accept, v=v, what=what, show=show:
                                 Decision.split(p, field, accept, v.invert, what, show=lambda s: show if s is accept else (p.addr_text(field) if field in ("src", "dst") else str(s))))
                else:
                    tests.append(lambda p, have=orig, accept=accept, v=v, what=what, show=show:
                                 Decision.against(p, have, accept, v.invert, what, show))
        v = self.get("ctstatus")
        if v is not None:
            def status(p, v=v):
                hit = bool(conn.status & v.value)
                txt = ",".join(sorted(conn.status)) or "none"
                if hit != v.invert:
                    return Decision.all(p, f"ctstatus {txt}")
                return Decision.none(p, f"ctstatus {txt}, not {','.join(sorted(v.value))}")

            tests.append(status)
        v = self.get("ctexpire")
        if v is not None:
            tests.append(lambda p, v=v: Decision.fork(
                p, f"ctexpire {v.value[0]}:{v.value[1]}", f"connection expires in {v.value[0]}-{v.value[1]}s",
                f"connection expires outside {v.value[0]}-{v.value[1]}s"))
        v = self.get("ctdir")
        if v is not None:
            def direction(p, v=v):
                if conn.direction == v.value:
                    return Decision.all(p, f"direction {conn.direction}")
                return Decision.none(p, f"direction {conn.direction} ≠ {v.value}")

            tests.append(direction)
        return Decision.conjunction(pkts, tests)
