"""Rewrites in the trace's words: a NAT or mangle target's change of a field, shown as the
endpoint it changes (``198.51.100.1:9525 → 172.17.0.6:9525``)."""

from __future__ import annotations

from iptexplain.core.packets import U16, Packets, fmt_set, single
from iptexplain.core.nat import PORT_PROTOS


def field_text(p: Packets, f: str) -> str:
    if f in ("src", "dst"):
        return p.addr_text(f)
    return fmt_set(getattr(p, f))


ENDPOINTS = {"src": ("src", "sport"), "sport": ("src", "sport"), "dst": ("dst", "dport"),
             "dport": ("dst", "dport")}


def rewrite_steps(before: Packets, after: Packets, changed: list[str],
              texts: dict[str, tuple[str, str]] | None = None) -> list[tuple[str, str, str, dict]]:
    """(field, before, after, detail) per rewrite step.  For TCP/UDP/SCTP/DCCP/UDP-Lite an
    address and its port are one endpoint, shown together even when only one of them changed
    (``dst 198.51.100.1:9525 → 172.17.0.6:9525``); ``detail["fields"]`` keeps each field
    that changed.  Other fields (mark…) are one step each."""
    texts = texts or {}
    out: list[tuple[str, str, str, dict]] = []
    done: set[str] = set()
    ported = single(before.proto) in PORT_PROTOS
    for f in changed:
        if f in done:
            continue
        if f in ENDPOINTS and ported:
            a, port = ENDPOINTS[f]
            done.update((a, port))
            fields = {g: list(texts.get(g) or (field_text(before, g), field_text(after, g)))
                      for g in (a, port) if g in changed}
            show_port = getattr(before, port) != U16 or getattr(after, port) != U16
            b_txt, a_txt = endpoint(before, a, port, show_port), endpoint(after, a, port, show_port)
            out.append((a, b_txt, a_txt, {"field": a, "before": b_txt, "after": a_txt, "fields": fields}))
            continue
        done.add(f)
        b_txt, a_txt = texts.get(f) or (field_text(before, f), field_text(after, f))
        out.append((f, b_txt, a_txt, {"field": f, "before": b_txt, "after": a_txt}))
    return out


def endpoint(p: Packets, a: str, port: str, show_port: bool | None = None) -> str:
    """``198.51.100.1:9525``, ``[2001:db8::1]:80``; ``:*`` for any port when ``show_port`` asks
    for it (the other side of a rewrite has one)."""
    addr = p.addr_text(a)
    ports = getattr(p, port)
    if single(p.proto) not in PORT_PROTOS or not (ports != U16 if show_port is None else show_port):
        return addr
    return (f"[{addr}]" if p.family == 6 else addr) + ":" + (fmt_set(ports) if ports != U16 else "*")

