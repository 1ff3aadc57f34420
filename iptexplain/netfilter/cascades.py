"""kube-proxy's random endpoint choice as one fork: a cascade of ``statistic`` rules (1/3, then
1/2, then the rest) flattened into branches with their effective probabilities."""

from __future__ import annotations

from iptexplain.netfilter import trace as T
from iptexplain.netfilter.trace import Condition, Path

def flatten_cascades(path: Path, stat_forks: set[int]) -> None:
    """Merge a chain of random-choice forks (kube-proxy's 1/3, 1/2, rest) into one fork whose
    branches carry each endpoint's effective probability (1/3, 1/3, 1/3)."""
    stack = [path]
    while stack:
        p = stack.pop()
        f = p.fork
        if f is None:
            continue
        if id(f) in stat_forks:
            changed = True
            while changed:
                changed = False
                cond, last = f.branches[-1]
                nxt = last.fork
                if (last.outcome is None and nxt is not None and id(nxt) in stat_forks
                        and all(s.kind in (T.RULE, T.NOTE) and s.matched is not True for s in last.steps)):
                    merged = []
                    for c2, p2 in nxt.branches:
                        prob = None if cond.probability is None or c2.probability is None else cond.probability * c2.probability
                        merged.append((Condition(f"{cond.text}; {c2.text}", prob), Path(last.steps + p2.steps, p2.outcome, p2.fork)))
                    f.branches[-1:] = merged
                    stat_forks.add(id(f))
                    changed = True
            if len(f.branches) > 2:
                n = len(f.branches)
                f.reason = f"random choice among {n} rules (statistic cascade)"
                for i, (c, sub) in enumerate(f.branches):
                    if c.probability is not None:
                        c.text = f"random choice {i + 1} of {n} (probability {c.probability:.4g})"
        for _, sub in f.branches:
            stack.append(sub)
