"""devgroup: the device group of the in/out interface (libxt_devgroup)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, read_save_like, save_like_listing


def _group(text: str) -> tuple[int, int] | str:
    value_t, sep, mask_t = text.partition("/")
    try:
        return parse_uint(value_t), (parse_uint(mask_t) if sep else 0xFFFFFFFF)
    except OptionError:
        if sep or not text:
            raise
        return text  # a name from /etc/iproute2/group, kept as written


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    value, mask = v
    return f"0x{value:x}" if mask == 0xFFFFFFFF else f"0x{value:x}/0x{mask:x}"


group = OptType("devgroup", lambda a: _group(a[0]), lambda v: [_fmt(v)])


@register
class DevGroup(Match):
    name = "devgroup"
    options = (
        Opt("src_group", "--src-group", group),
        Opt("dst_group", "--dst-group", group),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("devgroup: --src-group or --dst-group is required")

    def allowed_hooks(self) -> frozenset[str] | None:
        """The in-interface's group needs an in-interface, the out-interface's an out one."""
        allowed = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
        if self.has("src_group"):
            allowed &= frozenset({"PREROUTING", "INPUT", "FORWARD"})
        if self.has("dst_group"):
            allowed &= frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
        return allowed

    def decide(self, pkts, ctx):
        """The interfaces' device groups: every interface is in group 0 unless the host model
        says otherwise (``ip link set … group``)."""
        tests = []
        for key, dev in (("src_group", pkts.iniface), ("dst_group", pkts.outiface)):
            v = self.get(key)
            if v is None:
                continue
            group = 0
            iface = ctx.router.host.interfaces.get(dev) if (ctx.router and dev) else None
            if iface is not None and hasattr(iface, "group"):
                group = iface.group or 0
            value, mask = v.value if isinstance(v.value, tuple) else (v.value, 0xFFFFFFFF)
            hit = dev is not None and (group & mask) == value
            tests.append(lambda p, hit=hit, v=v, key=key, group=group: (Decision.all if hit != v.invert else Decision.none)(
                p, f"{'in' if key == 'src_group' else 'out'}-interface group {group}"))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (devgroup_show: " [!] src-group 0xV[/0xM] [!] dst-group ...") -------------
    listing_keywords = ("src-group", "dst-group")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "DevGroup":
        return read_save_like(cls, tail, spelled="devgroup")  # type: ignore[return-value]
