"""policy: the IPsec policy that decapsulated (``--dir in``) or will encapsulate (``--dir out``)
the packet (libxt_policy).  ``--pol none`` matches packets IPsec did not touch.

Several policy elements are separated by ``--next`` (with ``--strict``); each element may test
reqid, spi, proto, mode and the tunnel endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.addr import Address, int_to_ip, parse_address
from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, Value, parse_uint, types
from iptexplain.numbers import is_decimal

POLICY_PROTOS = {"ah": 51, "esp": 50, "ipcomp": 108}
PROTO_PRINT = {51: "ah", 50: "esp", 108: "ipcomp"}
ELEMENT_KEYS = ("reqid", "spi", "proto", "mode", "tunnel_dst", "tunnel_src")


@dataclass(frozen=True, slots=True)
class PolicyElement:
    """One ``--next``-separated element: key -> (value, inverted)."""

    tests: tuple[tuple[str, object, bool], ...]

    def get(self, key: str) -> tuple[object, bool] | None:
        for k, v, inv in self.tests:
            if k == key:
                return v, inv
        return None


def _proto(text: str) -> int:
    t = text.lower()
    if t in POLICY_PROTOS:
        return POLICY_PROTOS[t]
    v = parse_uint(text, 8)
    if v not in PROTO_PRINT:
        raise OptionError(f"policy: protocol `{text}' is not ah, esp or ipcomp")
    return v


def _mode(text: str) -> str:
    if text not in ("transport", "tunnel"):
        raise OptionError(f"policy match: value for --mode `{text}' invalid")
    return text


def _tunnel_addr(text: str) -> Address:
    return parse_address(text)


def _fmt_tunnel(a: Address) -> str:
    full = (1 << (32 if a.family == 4 else 128)) - 1
    if a.mask == full:
        return int_to_ip(a.value, a.family)
    return str(a)


_ELEMENT_OPTS = {
    "--reqid": ("reqid", lambda t: parse_uint(t)),
    "--spi": ("spi", lambda t: parse_uint(t)),
    "--proto": ("proto", _proto),
    "--mode": ("mode", _mode),
    "--tunnel-src": ("tunnel_src", _tunnel_addr),
    "--tunnel-dst": ("tunnel_dst", _tunnel_addr),
}
_word = OptType("word", lambda a: a[0], lambda v: [v])


@register
class Policy(Match):
    name = "policy"
    options = (
        Opt("dir", "--dir", types.choice("in", "out"), invert=False),
        Opt("pol", "--pol", types.choice("none", "ipsec"), invert=False),
        Opt("strict", "--strict", types.flag, invert=False),
        Opt("reqid", "--reqid", _word),
        Opt("spi", "--spi", _word),
        Opt("proto", "--proto", _word),
        Opt("mode", "--mode", _word),
        Opt("tunnel_src", "--tunnel-src", _word),
        Opt("tunnel_dst", "--tunnel-dst", _word),
        Opt("next", "--next", types.flag, invert=False),
    )

    @classmethod
    def build(cls, opts, spelled: str = "", family: int | None = None):
        values: dict[str, Value] = {}
        elements: list[dict[str, tuple[object, bool]]] = [{}]
        for flag, inv, args in opts:
            o = cls.option_map()[flag]
            if flag in _ELEMENT_OPTS:
                key, parse = _ELEMENT_OPTS[flag]
                if key in elements[-1]:
                    raise OptionError(f"policy match: double --{key.replace('_', '-')} option")
                elements[-1][key] = (parse(args[0]), inv)
            elif o.key == "next":
                if not elements[-1]:
                    raise OptionError("policy match: empty policy element")
                elements.append({})
            else:
                if inv and not o.invert:
                    raise OptionError(f"policy: option \"{flag}\" cannot be inverted")
                if o.key in values:
                    raise OptionError(f"policy match: double {flag} option")
                values[o.key] = Value(o.type.parse(args), inv)
        if not elements[-1] and len(elements) > 1:
            raise OptionError("policy match: empty policy element")
        if elements[-1] or len(elements) > 1:
            elems = tuple(
                PolicyElement(tuple((k, e[k][0], e[k][1]) for k in ELEMENT_KEYS if k in e)) for e in elements if e
            )
            values["elements"] = Value(elems)
        obj = cls(values=tuple(values.items()), spelled=spelled or cls.name, nfproto=family)
        obj.check()
        return obj

    def check(self) -> None:
        if not self.has("dir"):
            raise OptionError("policy match: neither --dir in nor --dir out specified")
        if self.value("pol") == "none" and self.elements:
            raise OptionError("policy match: policy none but --reqid/--spi/... given")
        if len(self.elements) > 1 and not self.has("strict"):
            raise OptionError("policy match: multiple elements but no --strict")
        if len(self.elements) > 4:
            raise OptionError("policy match: too many policy elements specified")

    def allowed_hooks(self) -> frozenset[str] | None:
        """``--dir in`` only where packets arrive, ``--dir out`` only where they leave."""
        if self.value("dir") == "in":
            return frozenset({"PREROUTING", "INPUT", "FORWARD"})
        return frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})

    @property
    def direction(self) -> str:
        return self.value("dir")

    @property
    def policy(self) -> str:
        return self.value("pol", "ipsec")

    @property
    def elements(self) -> tuple[PolicyElement, ...]:
        return self.value("elements", ())

    def save_args(self) -> list[str]:
        out = ["--dir", self.direction, "--pol", self.policy]
        if self.has("strict"):
            out.append("--strict")
        for i, e in enumerate(self.elements):
            for key in ELEMENT_KEYS:
                got = e.get(key)
                if got is None:
                    continue
                v, inv = got
                if inv:
                    out.append("!")
                if key == "reqid":
                    out += ["--reqid", str(v)]
                elif key == "spi":
                    out += ["--spi", f"0x{v:x}"]
                elif key == "proto":
                    out += ["--proto", PROTO_PRINT.get(v, str(v))]  # type: ignore[arg-type]
                elif key == "mode":
                    out += ["--mode", str(v)]
                else:
                    out += ["--" + key.replace("_", "-"), _fmt_tunnel(v)]  # type: ignore[arg-type]
            if i + 1 < len(self.elements):
                out.append("--next")
        return out

    def decide(self, pkts, ctx):
        """IPsec policy: a described flow is plain IP (no IPsec), so ``--pol none`` matches
        and ``--pol ipsec`` does not."""
        from iptexplain.netfilter.packets import Decision

        pol = self.value("pol", "ipsec")
        if pol == "none":
            return Decision.all(pkts, f"{self.direction}: no IPsec policy")
        return Decision.none(pkts, f"{self.direction}: not IPsec-protected")

    # -- the -L face (policy4_print: " policy match dir in pol ipsec [strict] [[0]] reqid 1 ...")
    listing_keywords = ("policy",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        words = self.save_args()
        head: list[str] = []
        elements: list[list[str]] = [[]]
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("--dir", "--pol"):
                head += [w[2:], words[i + 1]]
                i += 2
            elif w == "--strict":
                head.append("strict")
                i += 1
            elif w == "--next":
                elements.append([])
                i += 1
            elif w == "!":
                elements[-1].append("!")
                i += 1
            else:
                value = words[i + 1]
                if w == "--proto" and numeric and not is_decimal(value):
                    from iptexplain.parse.rulespec import PROTO_NUMBERS

                    value = str(PROTO_NUMBERS.get(value, value))
                elements[-1] += [w[2:], value]
                i += 2
        out = ["policy", "match"] + head
        for n, e in enumerate(elements):
            out += ([f"[{n}]"] if len(elements) > 1 else []) + e
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Policy":
        tail.expect("policy", "match")
        opts: list = []
        for word in ("dir", "pol"):
            tail.expect(word)
            opts.append(("--" + word, False, [tail.take()]))
        if tail.take_if("strict"):
            opts.append(("--strict", False, []))
        element = 0
        while not tail.at_end():
            w = tail.peek()
            if w is not None and w.startswith("[") and w.endswith("]") and is_decimal(w[1:-1]) and len(w) < 8:
                if int(w[1:-1]) > element:
                    opts.append(("--next", False, []))
                    element = int(w[1:-1])
                tail.pos += 1
                continue
            start = tail.pos
            inv = tail.invert()
            w = tail.peek()
            if w not in ("reqid", "spi", "proto", "mode", "tunnel-src", "tunnel-dst"):
                tail.pos = start
                break
            tail.pos += 1
            opts.append(("--" + w, inv, [tail.take()]))
        return cls.build(opts, spelled="policy", family=tail.family)  # type: ignore[return-value]
