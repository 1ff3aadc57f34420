"""physdev: the bridge ports a bridged packet came in on / goes out of (libxt_physdev).

Only bridged traffic seen by iptables (``br_netfilter``) has physical devices; libvirt and
Docker-in-bridge setups use ``--physdev-is-bridged``.
"""

from __future__ import annotations

from iptexplain.core.addr import check_iface
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

iface = OptType("iface", lambda a: check_iface(a[0]), lambda v: [v])


@register
class Physdev(Match):
    name = "physdev"
    options = (
        Opt("physdev_is_in", "--physdev-is-in", types.flag),
        Opt("physdev_in", "--physdev-in", iface),
        Opt("physdev_is_out", "--physdev-is-out", types.flag),
        Opt("physdev_out", "--physdev-out", iface),
        Opt("physdev_is_bridged", "--physdev-is-bridged", types.flag),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("PHYSDEV: no physdev option specified")

    def allowed_hooks(self) -> frozenset[str] | None:
        """An output bridge port is unknown to locally generated packets unless the match is
        only about bridged traffic (xt_physdev checkentry)."""
        bridged = self.get("physdev_is_bridged")
        if (self.has("physdev_out") or self.has("physdev_is_out")) and (bridged is None or bridged.invert):
            return frozenset({"PREROUTING", "INPUT", "FORWARD", "POSTROUTING"})
        return None

    @property
    def physdev_in(self) -> tuple[str, bool] | None:
        v = self.get("physdev_in")
        return None if v is None else (v.value, v.invert)

    @property
    def physdev_out(self) -> tuple[str, bool] | None:
        v = self.get("physdev_out")
        return None if v is None else (v.value, v.invert)

    @property
    def is_bridged(self) -> bool | None:
        """True: must be bridged; False: must not be (``!``); None: not tested."""
        v = self.get("physdev_is_bridged")
        return None if v is None else not v.invert

    def decide(self, pkts, ctx):
        """The bridge ports of a bridged packet (br_netfilter): known only when the flow
        enters or leaves through a bridge; the port (which container) is then a fork unless
        the flow names it."""
        def _is_bridge(ctx, name):
            i = ctx.router.host.interfaces.get(name) if ctx.router is not None else None
            return i is not None and i.kind == "bridge"

        bridged_in = pkts.physindev is not None or (pkts.iniface is not None and _is_bridge(ctx, pkts.iniface))
        bridged_out = pkts.physoutdev is not None or (pkts.outiface is not None and _is_bridge(ctx, pkts.outiface)
                                                      and bridged_in and pkts.iniface == pkts.outiface)
        tests = []
        v = self.get("physdev_is_bridged")
        if v is not None:
            is_b = bridged_in and bridged_out
            tests.append(lambda p, v=v: (Decision.all if is_b != v.invert else Decision.none)(
                p, "bridged" if is_b else "not bridged"))
        for key, is_key, port, known, what in (
                ("physdev_in", "physdev_is_in", pkts.physindev, bridged_in, "in"),
                ("physdev_out", "physdev_is_out", pkts.physoutdev, bridged_out, "out")):
            v = self.get(is_key)
            if v is not None:
                tests.append(lambda p, v=v, known=known, what=what: (Decision.all if known != v.invert else Decision.none)(
                    p, f"{'has' if known else 'no'} physical {what} port"))
            v = self.get(key)
            if v is None:
                continue
            if not known:
                tests.append(lambda p, v=v, what=what: Decision.none(p, f"not bridged: no physical {what} port"))
            elif port is not None:
                hit = port.startswith(v.value[:-1]) if v.value.endswith("+") else port == v.value
                tests.append(lambda p, v=v, hit=hit, port=port, what=what: (Decision.all if hit != v.invert else Decision.none)(
                    p, f"physical {what} port {port}{'' if hit else ' ≠ ' + v.value}"))
            else:
                tests.append(lambda p, v=v, what=what: Decision.fork(
                    p, f"physdev-{what} {v.value}", f"bridge port {'not ' if v.invert else ''}{v.value}",
                    f"bridge port {'' if v.invert else 'not '}{v.value}"))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (physdev_print: " PHYSDEV match [!] --physdev-in X ...", dashes kept) ------
    listing_keywords = ("PHYSDEV",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["PHYSDEV", "match"]
        for key, flag in (("physdev_is_in", "--physdev-is-in"), ("physdev_in", "--physdev-in"),
                          ("physdev_is_out", "--physdev-is-out"), ("physdev_out", "--physdev-out"),
                          ("physdev_is_bridged", "--physdev-is-bridged")):
            v = self.get(key)
            if v is not None:
                out += (["!"] if v.invert else []) + [flag] + ([str(v.value)] if key in ("physdev_in", "physdev_out") else [])
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Physdev":
        tail.expect("PHYSDEV", "match")
        opts: list = []
        while not tail.at_end():
            start = tail.pos
            inv = tail.invert()
            w = tail.peek()
            if w is None or not w.startswith("--physdev-") or not cls.knows(w):
                tail.pos = start
                break
            tail.pos += 1
            opts.append((w, inv, [tail.take()] if w in ("--physdev-in", "--physdev-out") else []))
        return cls.build(opts, spelled="physdev")  # type: ignore[return-value]
