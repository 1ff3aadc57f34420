"""The ``-m set`` decision over packet sets, from ipset contents (read by :mod:`iptexplain.inputs.ipset`).

The kernel looks up a tuple built from the packet, one element per set dimension, each taken
from the source or the destination as the rule's flags say (``--match-set KUBE-X dst,dst``:
destination address, destination port).  With the set's members known the tracer decides
exactly; without them (no dump given) the rule forks, labelled with the set and the tuple.
"""

from __future__ import annotations

from iptexplain.core.packets import Decision, Packets, intersect, normalize, point, single


def decide_set(m, pkts: Packets, ctx) -> Decision:
    """``-m set [!] --match-set NAME dirs``."""
    sets = ctx.ipsets or {}
    name = m.set_name
    flags = m.flags
    label = f"{'! ' if m.inverted else ''}--match-set {name} {','.join(flags)}"
    s = sets.get(name)
    if s is None:
        why = "no ipset dump given" if not sets else f"set {name} not in the ipset dump"
        return Decision.fork(pkts, f"set {name} ({why})", f"tuple in set {name}" if not m.inverted else
                             f"tuple not in set {name}", f"tuple not in set {name}" if not m.inverted else
                             f"tuple in set {name}")
    dims = s.dims[: len(flags)]
    if dims == ["addr"]:
        field = flags[0]
        accept = normalize(iv for mem in s.members for iv in mem[0])
        return Decision.split(pkts, field, accept, m.inverted, f"{'source' if field == 'src' else 'destination'} in set {name}",
                              show=lambda x: name if x is accept else pkts.addr_text(field))
    # Several dimensions: exact when the packet's fields are known exactly.
    values = []
    for kind, d in zip(dims, flags):
        if kind == "addr":
            v = single(getattr(pkts, d))
        elif kind == "port":
            v = (single(pkts.proto), single(getattr(pkts, "sport" if d == "src" else "dport")))
            if None in v:
                v = None
        else:
            v = None
        if v is None:
            return Decision.fork(pkts, f"set {name} ({label})", f"tuple in set {name}", f"tuple not in set {name}")
        values.append((kind, v))
    hit = False
    for mem in s.members:
        ok = True
        for (kind, v), elem in zip(values, mem):
            if kind == "addr":
                ok = bool(intersect(elem, point(v)))
            else:
                proto, ports = elem
                ok = proto == v[0] and bool(intersect(ports, point(v[1])))
            if not ok:
                break
        if ok:
            hit = True
            break
    if hit != m.inverted:
        return Decision.all(pkts, f"tuple {'not ' if m.inverted else ''}in set {name}")
    return Decision.none(pkts, f"tuple {'in' if m.inverted else 'not in'} set {name}")


__all__ = ["decide_set"]
