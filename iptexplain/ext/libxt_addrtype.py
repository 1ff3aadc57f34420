"""addrtype: the routing type of the source or destination address (libxt_addrtype).

``--dst-type LOCAL`` asks "is this one of the host's own addresses?" -- the tracer answers it
from the host model, which is why Docker's nat PREROUTING rule needs one.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")


def _types(text: str) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w.upper() not in ADDR_TYPES:
            raise OptionError(f"addrtype: invalid address type \"{w}\"")
        out.add(w.upper())
    return frozenset(out)


addrtypes = OptType("addrtypes", lambda a: _types(a[0]), lambda v: [",".join(t for t in ADDR_TYPES if t in v)])


@register
class AddrType(Match):
    name = "addrtype"
    options = (
        Opt("src_type", "--src-type", addrtypes),
        Opt("dst_type", "--dst-type", addrtypes),
        Opt("limit_iface_in", "--limit-iface-in", types.flag, invert=False),
        Opt("limit_iface_out", "--limit-iface-out", types.flag, invert=False),
    )

    def allowed_hooks(self) -> frozenset[str] | None:
        """The interface a limitation names must exist at the hook (xt_addrtype checkentry)."""
        if self.has("limit_iface_in"):
            return frozenset({"PREROUTING", "INPUT", "FORWARD"})
        if self.has("limit_iface_out"):
            return frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
        return None

    def check(self) -> None:
        if self.has("limit_iface_in") and self.has("limit_iface_out"):
            raise OptionError("addrtype: you can't specify both --limit-iface-in and --limit-iface-out")

    # -- the -L face (addrtype_print_v1) -------------------------------------------------------
    listing_keywords = ("ADDRTYPE",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["ADDRTYPE match"]
        for key, word in (("src_type", "src-type"), ("dst_type", "dst-type")):
            v = self.get(key)
            if v is not None:
                out.append(f"{word} {'!' if v.invert else ''}{addrtypes.fmt(v.value)[0]}")
        if self.has("limit_iface_in"):
            out.append("limit-in")
        if self.has("limit_iface_out"):
            out.append("limit-out")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "AddrType":
        tail.expect("ADDRTYPE", "match")
        opts: list = []
        for word, flag in (("src-type", "--src-type"), ("dst-type", "--dst-type")):
            if tail.take_if(word):
                value = tail.take()
                inv = value.startswith("!")
                opts.append((flag, inv, [value.lstrip("!")]))
        if tail.take_if("limit-in"):
            opts.append(("--limit-iface-in", False, []))
        if tail.take_if("limit-out"):
            opts.append(("--limit-iface-out", False, []))
        return cls.build(opts, spelled="addrtype")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The routing type of the source/destination address, from the host model's local
        table (``--limit-iface-in/out``: LOCAL only on that interface)."""
        from iptexplain.netfilter.packets import Decision, EMPTY, union

        dev = pkts.iniface if self.has("limit_iface_in") else (pkts.outiface if self.has("limit_iface_out") else None)
        tests = []
        for key, field, what in (("src_type", "src", "source type"), ("dst_type", "dst", "destination type")):
            v = self.get(key)
            if v is None:
                continue

            def test(p, v=v, field=field, what=what):
                kinds = ctx.router.addr_types(getattr(p, field), dev)
                accept = EMPTY
                for kind, part in kinds.items():
                    if kind in v.value:
                        accept = union(accept, part)
                have = "/".join(sorted(kinds))
                want = ",".join(sorted(v.value))
                d = Decision.split(p, field, accept, v.invert, what, show=lambda s: want if s is accept else p.addr_text(field))
                if d.matched is None or d.unmatched is None:
                    rel = "is" if d.unmatched is None else "is not"
                    if v.invert:
                        rel = "is not" if d.unmatched is None else "is"
                    # "(UNICAST)" says what the address is when it is not (or not only) what is asked
                    d.reason = (f"{'source' if field == 'src' else 'destination'} {p.addr_text(field)} {rel} {want}"
                                + (f" ({have})" if have != want else ""))
                else:
                    d.yes.text = f"{'source' if field == 'src' else 'destination'} {'not ' if v.invert else ''}{want}"
                    d.no.text = f"{'source' if field == 'src' else 'destination'} {'' if v.invert else 'not '}{want}"
                return d

            tests.append(test)
        return Decision.conjunction(pkts, tests)
