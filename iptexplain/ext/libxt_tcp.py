"""tcp: source/destination ports, TCP flags and options (libxt_tcp)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import ListingTail, Match, Opt, OptType, listing_port, listing_service, types
from iptexplain.numbers import hexadecimal

TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20))
_FLAG_BITS = dict(TCP_FLAGS) | {"ALL": 0x3F, "NONE": 0}


def parse_flags(text: str) -> int:
    bits = 0
    for name in text.split(","):
        if name.upper() not in _FLAG_BITS:
            raise OptionError(f"Unknown TCP flag `{name}'")
        bits |= _FLAG_BITS[name.upper()]
    return bits


def fmt_flags(bits: int) -> str:
    names = [n for n, b in TCP_FLAGS if bits & b]
    return ",".join(names) if names else "NONE"


tcpflags = OptType(
    "tcpflags",
    lambda args: (parse_flags(args[0]), parse_flags(args[1])),
    lambda v: [fmt_flags(v[0]), fmt_flags(v[1])],
    nargs=2,
)
SYN_FLAGS = (0x17, 0x02)  # --syn == --tcp-flags FIN,SYN,RST,ACK SYN


def port_tests(ext) -> list:  # noqa: ANN001
    """The decisions of ``--sport``/``--dport`` (tcp, udp, sctp, dccp alike: xt_tcpudp's
    port_match), one split of the packets per option given, for Decision.conjunction."""
    from iptexplain.netfilter.packets import Decision, span

    tests = []
    for key in ("sport", "dport"):
        v = ext.get(key)
        if v is not None:
            tests.append(lambda p, k=key, v=v: Decision.split(p, k, span(*v.value), v.invert, k))
    return tests


# -- the -L face, shared with udp (and sctp/dccp, whose print functions write ports alike) ------

def listing_ports(word: str, rng: tuple[int, int], invert: bool, numeric: bool, proto: str) -> str:
    """print_ports: ``dpt:22``, ``dpt:!22``, ``dpts:1024:65535`` (service names unless -n)."""
    lo, hi = rng
    inv = "!" if invert else ""
    if lo == hi:
        return f"{word}:{inv}{listing_port(lo, numeric, proto)}"
    return f"{word}s:{inv}{listing_port(lo, numeric, proto)}:{listing_port(hi, numeric, proto)}"


def read_listing_ports(tail: ListingTail, opts: list, words=(("spt", "--sport"), ("dpt", "--dport"))) -> None:
    """Read ``spt:…``/``dpts:…`` words at the cursor into save-style option triples."""
    for word, flag in words:
        w = tail.peek()
        if w is None:
            return
        for prefix in (word + ":", word + "s:"):
            if w.startswith(prefix):
                value = w[len(prefix):]
                inv = value.startswith("!")
                if inv:
                    value = value[1:]
                if prefix.endswith("s:") and ":" not in value:
                    raise ValueError
                value = ":".join(listing_service(v, tail.proto) for v in value.split(":"))
                opts.append((flag, inv, [value]))
                tail.pos += 1
                break


def _split_glued(tail: ListingTail) -> None:
    """iptables 1.4 printed ``tcpflags: 0x17/0x02`` and ``dpt:22flags: 0x17/0x02`` (no blank
    before ``flags:``): split such words in place so the reader sees ``flags:`` on its own."""
    i = tail.pos
    words = tail.words
    while i < len(words):
        w = words[i]
        k = w.find("flags:", 1)
        if k > 0 and not w.startswith(("flags:", "/*", '"')):
            words[i : i + 1] = [w[:k], w[k:]]
            i += 1
        i += 1
        if i - tail.pos > 6:
            break


@register
class Tcp(Match):
    name = "tcp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
        Opt("option", "--tcp-option", types.uint8),
        Opt("flags", "--tcp-flags", tcpflags),
        Opt("syn", "--syn", types.flag),
    )

    def check(self) -> None:
        if self.has("syn") and self.has("flags"):
            raise OptionError("tcp: --syn and --tcp-flags cannot be combined")

    @property
    def tcp_flags(self) -> tuple[tuple[int, int], bool] | None:
        """(mask, compare) and inversion; ``--syn`` is the flags test it abbreviates."""
        v = self.get("flags") or self.get("syn")
        if v is None:
            return None
        return (v.value if self.has("flags") else SYN_FLAGS), v.invert

    def save_args(self) -> list[str]:
        out = []
        for key, flag in (("sport", "--sport"), ("dport", "--dport"), ("option", "--tcp-option")):
            v = self.get(key)
            if v is not None:
                out += (["!"] if v.invert else []) + [flag] + (
                    types.portrange.fmt(v.value) if key != "option" else [str(v.value)]
                )
        tf = self.tcp_flags
        if tf is not None:
            (mask, cmp), inv = tf
            out += (["!"] if inv else []) + ["--tcp-flags", fmt_flags(mask), fmt_flags(cmp)]
        return out

    # -- the -L face (tcp_print) ---------------------------------------------------------------
    listing_keywords = ("tcp", "tcpflags:")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["tcp"]
        for key, word in (("sport", "spt"), ("dport", "dpt")):
            v = self.get(key)
            if v is not None and (v.value != (0, 65535) or v.invert):
                out.append(listing_ports(word, v.value, v.invert, numeric, "tcp"))
        v = self.get("option")
        if v is not None and (v.value or v.invert):
            out.append(f"option={'!' if v.invert else ''}{v.value}")
        tf = self.tcp_flags
        if tf is not None:
            (mask, cmp), inv = tf
            if mask or inv:
                flags = f"0x{mask:02X}/0x{cmp:02X}" if numeric else f"{fmt_flags(mask)}/{fmt_flags(cmp)}"
                out.append(f"flags:{'!' if inv else ''}{flags}")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail: ListingTail) -> "Tcp":
        _split_glued(tail)
        w = tail.take()
        if w == "tcpflags:":  # iptables 1.4: "tcp" glued to "flags:"
            tail.pos -= 1
            tail.words[tail.pos : tail.pos + 1] = ["tcp", "flags:"]
            tail.pos += 1
        elif w != "tcp":
            raise OptionError("not a tcp match")
        opts: list = []
        try:
            read_listing_ports(tail, opts)
        except ValueError:
            raise OptionError("bad tcp port range") from None
        w = tail.peek()
        if w is not None and w.startswith("option="):
            value = w[len("option="):]
            inv = value.startswith("!")
            opts.append(("--tcp-option", inv, [value.lstrip("!")]))
            tail.pos += 1
            w = tail.peek()
        if w is not None and w.startswith("flags:"):
            tail.pos += 1
            value = w[len("flags:"):] or tail.take()  # 1.4 printed "flags: 0x17/0x02"
            inv = value.startswith("!")
            value = value.lstrip("!")
            mask_t, sep, cmp_t = value.partition("/")
            if not sep:
                raise OptionError(f"bad tcp flags `{value}'")
            if mask_t.lower().startswith("0x"):
                mask, cmp = hexadecimal(mask_t, "tcp flags", 0xFF), hexadecimal(cmp_t, "tcp flags", 0xFF)
            else:
                mask, cmp = parse_flags(mask_t), parse_flags(cmp_t)
            opts.append(("--tcp-flags", inv, [fmt_flags(mask), fmt_flags(cmp)]))
        return cls.build(opts, spelled="tcp")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Which packets have these ports and flags (xt_tcp's tcp_mt); TCP options are not
        part of the described flow, so ``--tcp-option`` forks."""
        from iptexplain.netfilter.packets import Decision, masked_set, single

        tests = port_tests(self)
        tf = self.tcp_flags
        if tf is not None:
            (mask, cmp), inv = tf
            accept = masked_set(cmp, mask, 8)

            def show(s, accept=accept, mask=mask, cmp=cmp):
                if s is accept:
                    return f"{fmt_flags(mask)}/{fmt_flags(cmp)}"
                one = single(s)
                return fmt_flags(one) if one is not None else "(several)"

            tests.append(lambda p: Decision.split(p, "tcpflags", accept, inv, "tcp flags", show=show))
        opt = self.get("option")
        if opt is not None:
            tests.append(lambda p: Decision.fork(
                p, f"tcp option {opt.value}", f"TCP option {opt.value} {'absent' if opt.invert else 'present'}",
                f"TCP option {opt.value} {'present' if opt.invert else 'absent'}"))
        return Decision.conjunction(pkts, tests)
