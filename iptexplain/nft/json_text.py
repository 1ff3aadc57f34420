"""``nft -j list ruleset`` (libnftables' JSON schema, ``json_schema_version`` 1) as the text
``nft -a list ruleset`` prints for the same ruleset.

The JSON and the text are two printings of one ruleset by libnftables: every JSON object
(table, chain, set, map, stateful object, rule) has a text form, and every expression and
statement of a rule's ``expr`` list prints as the words nft prints for it
(``{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
"right": 22}}`` is ``tcp dport 22``).  Writing the JSON out as that text lets one grammar and
one set of expression modules (:mod:`iptexplain.nft.reader`, :mod:`iptexplain.nft.expr`) read
both formats into one model, and gives the views the rules as nft prints them.  Handles, which
the JSON always carries, are written as ``# handle N`` (the ``-a`` form).

An expression this module does not know is written as its JSON (the reader keeps unknown words
verbatim, and the rule forks on them, as for an unknown iptables module); an object that is
not a JSON object where the schema wants one is bad input (:class:`JsonRulesetError`, with the
index of the object in the ``nftables`` array).

The round trip is checked against the kernel: the text of each fixture's JSON, loaded with
``nft -f``, lists back as the same JSON (tests/test_nft_json.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

# The schema's version this module writes text for (libnftables-json(5) "METAINFO").
JSON_SCHEMA_VERSION = 1

# meta keys nft prints without ``meta`` (nft's meta_key_is_unqualified()).
UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
# Selectors whose values are interface names: nft prints them quoted.
IFNAME_META = frozenset({"iifname", "oifname", "iif", "oif", "ibrname", "obrname", "iifkind",
                         "oifkind", "ibriport", "obriport", "sdifname"})
STATEMENT_VERDICTS = ("accept", "drop", "continue", "return", "jump", "goto", "queue")
BINOPS = ("&", "|", "^", "<<", ">>")


class JsonRulesetError(ValueError):
    """The document is not an ``nft -j list ruleset`` document; ``where`` says which object."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(s: Any) -> str:
    """A table/chain/set name as nft prints it (bare unless it would not read back)."""
    s = str(s)
    if not s or any(c.isspace() for c in s) or any(c in s for c in '{}";#'):
        return _quote(s)
    return s


@dataclass
class _Ctx:
    """What the value being written is compared with: values of interface-name selectors
    (and set elements of type ifname) are strings nft prints quoted."""

    quote_strings: bool = False


def value(v: Any, ctx: _Ctx | None = None) -> str:
    """A right-hand side, a set element, a map's data."""
    ctx = ctx or _Ctx()
    if isinstance(v, bool):
        return "exists" if v else "missing"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        if ctx.quote_strings and not v.startswith("@"):
            return _quote(v)
        return v if v and not any(c.isspace() for c in v) else _quote(v)
    if isinstance(v, list):  # flags: ct state established,related
        return ",".join(value(x, ctx) for x in v)
    if isinstance(v, dict):
        return expr(v, ctx)
    return json.dumps(v)


def _set_elements(elems: Iterable[Any], ctx: _Ctx) -> str:
    out = []
    for e in elems:
        if isinstance(e, list) and len(e) == 2:  # a map element: [key, data]
            out.append(f"{_element(e[0], ctx)} : {_element(e[1], _Ctx())}")
        else:
            out.append(_element(e, ctx))
    return "{ " + ", ".join(out) + " }"


def _element(e: Any, ctx: _Ctx) -> str:
    if isinstance(e, dict) and "elem" in e and isinstance(e["elem"], dict):
        el = e["elem"]
        text = _element(el.get("val"), ctx)
        if "timeout" in el:
            text += f" timeout {el['timeout']}s"
        if "expires" in el:
            text += f" expires {el['expires']}s"
        if "comment" in el:
            text += f" comment {_quote(str(el['comment']))}"
        return text
    if isinstance(e, dict) and len(e) == 1 and next(iter(e)) in STATEMENT_VERDICTS:
        return statement(e)
    return value(e, ctx)


def expr(e: Any, ctx: _Ctx | None = None) -> str:
    """An expression (what a relation compares, or a value)."""
    ctx = ctx or _Ctx()
    if not isinstance(e, dict):
        return value(e, ctx)
    if len(e) != 1:
        return json.dumps(e, separators=(",", ":"))
    (k, v), = e.items()
    if k == "payload":
        if "base" in v:
            return f"@{v['base']},{v['offset']},{v['len']}"
        return f"{v['protocol']} {v['field']}"
    if k == "meta":
        key = v["key"]
        return key if key in UNQUALIFIED_META else f"meta {key}"
    if k == "ct":
        parts = ["ct"]
        if v.get("dir"):
            parts.append(v["dir"])
        if v.get("family"):
            parts.append(v["family"])
        parts.append(v["key"])
        return " ".join(parts)
    if k == "fib":
        flags = v.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        return f"fib {' . '.join(flags)} {v['result']}"
    if k == "numgen":
        out = f"numgen {v.get('mode', 'inc')} mod {v['mod']}"
        return out + (f" offset {v['offset']}" if v.get("offset") else "")
    if k in ("jhash", "symhash"):
        out = k + (f" {expr(v['expr'])}" if "expr" in v else "") + f" mod {v['mod']}"
        out += f" seed 0x{v['seed']:x}" if v.get("seed") is not None else ""
        return out + (f" offset {v['offset']}" if v.get("offset") else "")
    if k == "prefix":
        return f"{value(v['addr'], ctx)}/{v['len']}"
    if k == "range":
        return f"{value(v[0], ctx)}-{value(v[1], ctx)}"
    if k == "set":
        return _set_elements(v if isinstance(v, list) else [v], ctx)
    if k == "concat":
        return " . ".join(expr(x, ctx) for x in v)
    if k in BINOPS:
        # a list operand is a bitmask of flags: ``tcp flags & (syn | ack)``
        return f" {k} ".join("(" + " | ".join(value(f) for f in x) + ")" if isinstance(x, list) else expr(x)
                             for x in v)
    if k == "map":
        return f"{expr(v['key'])} map {_data(v['data'])}"
    if k == "elem":
        return _element(e, ctx)
    if k == "rt":
        return "rt " + (f"{v['family']} " if v.get("family") else "") + v["key"]
    if k == "socket":
        return f"socket {v['key']}"
    if k == "osf":
        return "osf " + (f"ttl {v['ttl']} " if v.get("ttl") else "") + v.get("key", "name")
    if k == "exthdr":
        if "field" in v:
            return f"{v['name']} {v['field']}"
        return f"exthdr {v['name']}"
    if k == "tcp option":
        return f"tcp option {v['name']}" + (f" {v['field']}" if "field" in v else "")
    if k == "sctp chunk":
        return f"sctp chunk {v['name']}" + (f" {v['field']}" if "field" in v else "")
    if k == "ipsec":
        return f"ipsec {v['dir']}" + (f" spnum {v['spnum']}" if v.get("spnum") else "") + f" {v['key']}"
    if k == "dccp option":
        return f"dccp option {v['type']}"
    if k in STATEMENT_VERDICTS:
        return statement(e)
    return json.dumps(e, separators=(",", ":"))


def _data(d: Any) -> str:
    """A map's data: ``@name`` or an anonymous map ``{ k : v, … }``."""
    if isinstance(d, str):
        return d
    if isinstance(d, dict) and "set" in d:
        return _set_elements(d["set"], _Ctx())
    return expr(d)


def _left_quotes(left: Any) -> bool:
    if isinstance(left, dict) and "meta" in left:
        return left["meta"].get("key") in IFNAME_META
    if isinstance(left, dict) and "concat" in left:
        return any(_left_quotes(x) for x in left["concat"])
    return False


def _match(m: dict[str, Any]) -> str:
    left, right, op = m["left"], m["right"], m.get("op", "==")
    lt = expr(left)
    ctx = _Ctx(quote_strings=_left_quotes(left))
    rt = value(right, ctx) if not isinstance(right, dict) else expr(right, ctx)
    if op == "in":
        return f"{lt} {rt}"
    if op == "==":
        # nft leaves == out, except after a bitwise expression (``meta mark & 0x4000 == 0``)
        if isinstance(left, dict) and next(iter(left), "") in BINOPS:
            return f"{lt} == {rt}"
        return f"{lt} {rt}"
    return f"{lt} {op} {rt}"


def _nat(kind: str, v: dict[str, Any] | None) -> str:
    out = [kind]
    v = v or {}
    if v.get("family") and kind in ("snat", "dnat"):
        out.append(v["family"])
    target = ""
    if "addr" in v:
        addr = expr(v["addr"]) if isinstance(v["addr"], dict) else str(v["addr"])
        target = f"[{addr}]" if ":" in addr and "port" in v and not isinstance(v["addr"], dict) else addr
    if "port" in v:
        port = expr(v["port"]) if isinstance(v["port"], dict) else str(v["port"])
        target += f":{port}"
    if target:
        out += ["to", target]
    flags = v.get("flags", [])
    if flags:
        out.append(",".join([flags] if isinstance(flags, str) else flags))
    return " ".join(out)


def _limit(v: dict[str, Any]) -> str:
    out = "limit rate " + ("over " if v.get("inv") else "")
    unit = v.get("rate_unit", "packets")
    out += f"{v['rate']}" + (f" {unit}" if unit != "packets" else "") + f"/{v.get('per', 'second')}"
    if v.get("burst"):
        out += f" burst {v['burst']} {v.get('burst_unit', 'packets')}"
    return out


def statement(s: Any) -> str:
    """One statement of a rule's ``expr`` list."""
    if not isinstance(s, dict) or len(s) != 1:
        return json.dumps(s, separators=(",", ":"))
    (k, v), = s.items()
    if k == "match":
        return _match(v)
    if k in ("accept", "drop", "continue", "return"):
        return k
    if k in ("jump", "goto"):
        return f"{k} {_name(v['target'])}"
    if k == "counter":
        if isinstance(v, str):
            return f"counter name {_name(v)}"
        if isinstance(v, dict):
            return f"counter packets {v.get('packets', 0)} bytes {v.get('bytes', 0)}"
        return "counter"
    if k == "reject":
        if not v:
            return "reject"
        t = v.get("type", "")
        if t == "tcp reset":
            return "reject with tcp reset"
        return f"reject with {t} {v['expr']}" if v.get("expr") else f"reject with {t}"
    if k == "log":
        out = ["log"]
        v = v or {}
        if "prefix" in v:
            out += ["prefix", _quote(str(v["prefix"]))]
        if "level" in v:
            out += ["level", str(v["level"])]
        if "group" in v:
            out += ["group", str(v["group"])]
        if "snaplen" in v:
            out += ["snaplen", str(v["snaplen"])]
        if "queue-threshold" in v:
            out += ["queue-threshold", str(v["queue-threshold"])]
        flags = v.get("flags", [])
        if flags:
            out += ["flags", ",".join([flags] if isinstance(flags, str) else flags)]
        return " ".join(out)
    if k == "limit":
        return _limit(v) if isinstance(v, dict) else f"limit name {_name(v)}"
    if k == "quota":
        if isinstance(v, str):
            return f"quota name {_name(v)}"
        out = "quota " + ("over " if v.get("inv") else "") + f"{v['val']} {v.get('val_unit', 'bytes')}"
        return out + (f" used {v['used']} {v.get('used_unit', 'bytes')}" if v.get("used") else "")
    if k == "ct count":
        return "ct count " + ("over " if v.get("inv") else "") + str(v["val"])
    if k == "mangle":
        key = v["key"]
        return f"{expr(key)} set {value(v['value'], _Ctx(quote_strings=_left_quotes(key)))}"
    if k in ("snat", "dnat", "masquerade", "redirect"):
        return _nat(k, v)
    if k == "vmap":
        return f"{expr(v['key'])} vmap {_data(v['data'])}"
    if k == "notrack":
        return "notrack"
    if k == "xt":
        return f"xt {v.get('type', 'match')} {v.get('name', '')}".rstrip()
    if k == "ct helper":
        return f"ct helper set {_quote(str(v))}"
    if k == "ct timeout":
        return f"ct timeout set {_quote(str(v))}"
    if k == "ct expectation":
        return f"ct expectation set {_quote(str(v))}"
    if k == "set":
        elem = v["elem"]
        elems = elem if isinstance(elem, list) else [elem]
        return f"{v['op']} {v['set']} {{ {', '.join(expr(x) for x in elems)} }}"
    if k == "map":  # dynamic map update: `update @m { ip saddr : 1 }`
        return f"{v['op']} {v['map']} {{ {expr(v['elem'])} : {expr(v['data'])} }}"
    if k == "meter":
        return f"meter {_name(v['name'])} {{ {expr(v['key'])} {statement(v['stmt'])} }}"
    if k == "queue":
        out = ["queue"]
        v = v or {}
        flags = v.get("flags", [])
        if flags:
            out += ["flags", ",".join([flags] if isinstance(flags, str) else flags)]
        if "num" in v:
            out += ["to", expr(v["num"]) if isinstance(v["num"], dict) else str(v["num"])]
        return " ".join(out)
    if k == "dup":
        return "dup to " + expr(v["addr"]) + (f" device {_quote(str(v['dev']))}" if v.get("dev") else "")
    if k == "fwd":
        return "fwd " + (f"{v['family']} " if v.get("family") else "") + "to " + (
            f"{expr(v['addr'])} device " if v.get("addr") else "") + expr(v["dev"])
    if k == "tproxy":
        return _nat("tproxy", v)
    if k == "synproxy":
        out = ["synproxy"]
        for key in ("mss", "wscale"):
            if key in v:
                out += [key, str(v[key])]
        flags = v.get("flags", [])
        out += [flags] if isinstance(flags, str) else list(flags)
        return " ".join(out)
    if k == "secmark":
        return f"meta secmark set {_quote(str(v))}"
    return json.dumps(s, separators=(",", ":"))


def rule_text(r: dict[str, Any]) -> str:
    """A rule object's statements as nft prints them (no handle)."""
    words = [statement(s) for s in r.get("expr", [])]
    if r.get("comment") is not None:
        words.append(f"comment {_quote(str(r['comment']))}")
    return " ".join(w for w in words if w)


def _type_words(t: Any) -> str:
    return " . ".join(t) if isinstance(t, list) else str(t)


def _handle(obj: dict[str, Any]) -> str:
    return f" # handle {obj['handle']}" if obj.get("handle") is not None else ""


@dataclass
class _Table:
    family: str
    name: str
    handle: int | None
    attrs: list[str] = field(default_factory=list)
    objects: list[list[str]] = field(default_factory=list)  # sets, maps, stateful objects
    chains: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)


def _set_block(kind: str, s: dict[str, Any]) -> list[str]:
    lines = [f"\t{kind} {_name(s['name'])} {{{_handle(s)}"]
    typ = _type_words(s.get("type", ""))
    if kind == "map":
        typ += f" : {_type_words(s.get('map', ''))}"
    lines.append(f"\t\ttype {typ}")
    if s.get("policy"):
        lines.append(f"\t\tpolicy {s['policy']}")
    flags = s.get("flags")
    if flags:
        lines.append(f"\t\tflags {','.join([flags] if isinstance(flags, str) else flags)}")
    if s.get("timeout"):
        lines.append(f"\t\ttimeout {s['timeout']}s")
    if s.get("gc-interval"):
        lines.append(f"\t\tgc-interval {s['gc-interval']}s")
    if s.get("size"):
        lines.append(f"\t\tsize {s['size']}")
    if s.get("comment") is not None:
        lines.append(f"\t\tcomment {_quote(str(s['comment']))}")
    if s.get("elem"):
        key_types = s.get("type", [])
        ctx = _Ctx(quote_strings="ifname" in (key_types if isinstance(key_types, list) else [key_types]))
        lines.append(f"\t\telements = {_set_elements(s['elem'], ctx)}")
    lines.append("\t}")
    return lines


# Stateful objects (libnftables-json(5) "OBJECTS") and the text nft prints for them.
def _object_block(kind: str, o: dict[str, Any]) -> list[str]:
    lines = [f"\t{kind} {_name(o['name'])} {{{_handle(o)}"]
    if kind == "ct helper":
        lines.append(f"\t\ttype {_quote(str(o.get('type', '')))} protocol {o.get('protocol', '')}")
        if o.get("l3proto"):
            lines.append(f"\t\tl3proto {o['l3proto']}")
    elif kind == "counter":
        lines.append(f"\t\tpackets {o.get('packets', 0)} bytes {o.get('bytes', 0)}")
    elif kind == "quota":
        lines.append(("\t\tover " if o.get("inv") else "\t\t") + f"{o.get('bytes', 0)} bytes")
    elif kind == "limit":
        lines.append("\t\t" + _limit(o)[len("limit "):])
    elif kind == "flowtable":
        lines.append(f"\t\thook {o.get('hook', 'ingress')} priority {o.get('prio', 0)}")
        devs = o.get("dev", [])
        devs = [devs] if isinstance(devs, str) else devs
        if devs:
            lines.append(f"\t\tdevices = {{ {', '.join(devs)} }}")
    elif o.get("comment") is not None:
        lines.append(f"\t\tcomment {_quote(str(o['comment']))}")
    lines.append("\t}")
    return lines


OBJECT_KINDS = ("ct helper", "ct timeout", "ct expectation", "counter", "quota", "limit", "secmark",
                "synproxy", "flowtable")


def _chain_head(c: dict[str, Any]) -> list[str]:
    lines = [f"\tchain {_name(c['name'])} {{{_handle(c)}"]
    if c.get("hook"):
        dev = c.get("dev")
        devs = ""
        if dev:
            devs = f" device {_quote(dev)}" if isinstance(dev, str) else \
                f" devices = {{ {', '.join(_quote(d) for d in dev)} }}"
        line = f"\t\ttype {c.get('type', 'filter')} hook {c['hook']}{devs} priority {c.get('prio', 0)};"
        if c.get("policy"):
            line += f" policy {c['policy']};"
        lines.append(line)
    if c.get("comment") is not None:
        lines.append(f"\t\tcomment {_quote(str(c['comment']))}")
    return lines


def to_text(doc: Any) -> str:
    """The whole document as ``nft -a list ruleset`` text (tables in the JSON's order)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise JsonRulesetError('not an nft JSON document: {"nftables": [ … ]} expected')
    tables: dict[tuple[str, str], _Table] = {}

    def table_of(o: dict[str, Any], where: str) -> _Table:
        key = (str(o.get("family", "")), str(o.get("table", "")))
        t = tables.get(key)
        if t is None:
            raise JsonRulesetError(f"names table {key[0]} {key[1]}, which the document does not list first", where)
        return t

    for i, item in enumerate(doc["nftables"]):
        where = f"nftables[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise JsonRulesetError("one object per entry expected", where)
        (kind, o), = item.items()
        if kind == "metainfo":
            v = o.get("json_schema_version") if isinstance(o, dict) else None
            if v is not None and v != JSON_SCHEMA_VERSION:
                raise JsonRulesetError(f"json_schema_version {v}: version {JSON_SCHEMA_VERSION} expected", where)
            continue
        if not isinstance(o, dict):
            raise JsonRulesetError(f"`{kind}': an object expected", where)
        try:
            if kind == "table":
                t = _Table(str(o["family"]), str(o["name"]), o.get("handle"))
                if o.get("comment") is not None:
                    t.attrs.append(f"\tcomment {_quote(str(o['comment']))}")
                flags = o.get("flags")
                if flags:
                    t.attrs.append(f"\tflags {','.join([flags] if isinstance(flags, str) else flags)}")
                tables[(t.family, t.name)] = t
            elif kind == "chain":
                t = table_of(o, where)
                t.chains[str(o["name"])] = _chain_head(o)
                t.rules.setdefault(str(o["name"]), [])
            elif kind == "rule":
                t = table_of(o, where)
                chain = str(o["chain"])
                if chain not in t.chains:
                    raise JsonRulesetError(f"rule of chain {chain}, which table {t.family} {t.name} "
                                           "does not list", where)
                t.rules[chain].append(f"\t\t{rule_text(o)}{_handle(o)}")
            elif kind in ("set", "map"):
                table_of(o, where).objects.append(_set_block(kind, o))
            elif kind in OBJECT_KINDS:
                table_of(o, where).objects.append(_object_block(kind, o))
            else:
                raise JsonRulesetError(f"unknown object `{kind}'", where)
        except KeyError as e:
            raise JsonRulesetError(f"`{kind}' without {e.args[0]!r}", where) from None
    out: list[str] = []
    for t in tables.values():
        head = f"table {t.family} {_name(t.name)} {{" + (f" # handle {t.handle}" if t.handle is not None else "")
        blocks: list[list[str]] = list(t.objects)
        for name, lines in t.chains.items():
            blocks.append(lines + t.rules[name] + ["\t}"])
        out.append(head)
        out.extend(t.attrs)
        for n, b in enumerate(blocks):
            if n:
                out.append("")
            out.extend(b)
        out.append("}")
    return "\n".join(out) + "\n" if out else ""


def looks_like_json(text: str) -> bool:
    """Whether the text is an ``nft -j`` document: a JSON object whose first key is
    ``nftables`` (what detects the format, beside iptables' and nft's text)."""
    head = text.lstrip()[:64]
    return head.startswith("{") and '"nftables"' in head.replace(" ", "")


__all__ = ["JsonRulesetError", "expr", "looks_like_json", "rule_text", "statement", "to_text"]
