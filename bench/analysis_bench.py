#!/usr/bin/env python3
"""Time the whole-ruleset analyses at kube-proxy scale, beside iptables' own reader of the file.

For each size (kube-proxy-shaped dumps made by ``gen_kube.py``) this runs, as whole processes,

* ``iptexplain reach FILE``   (the node's reachability table: every service, every entry point)
* ``iptexplain lint FILE``    (with ``--lint``: shadowing, unreachable chains, accepts undone)
* ``iptables-nft-restore --test < FILE`` inside a throw-away ``unshare -n -m`` namespace
  (parses and checks, commits nothing; as root only)

and prints CPU time (user + system), wall time and peak RSS of each, and reach's CPU time as a
multiple of ``iptables-nft-restore --test``'s.  On a shared machine wall times are noisy: read
the CPU column.  Nothing here touches the machine's own firewall.

Usage::

    sudo python bench/analysis_bench.py                       # 1k and 10k services
    python bench/analysis_bench.py --sizes 1000 --lint
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_kube  # noqa: E402  (bench/ is not a package)
from run import Timing, _iptexplain_cmd, in_namespace, measure  # noqa: E402


def _fmt(t: Timing) -> str:
    if t.note and not t.walls:
        return t.note
    cpu = f"{t.cpu:.1f} s cpu" if t.cpu is not None else "? cpu"
    mb = f"{t.peak_mb:.0f} MB" if t.peak_mb is not None else "? MB"
    return f"{cpu}, {t.best:.1f} s wall, {mb}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="service counts (comma-separated)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lint", action="store_true", help="time lint too")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args(argv)
    ipt = _iptexplain_cmd()
    can_ns = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("iptables-nft-restore")
    with tempfile.TemporaryDirectory(prefix="analysis-bench-") as d:
        for n in (int(x) for x in args.sizes.split(",")):
            path = Path(d) / f"kube-{n}.save"
            path.write_text(gen_kube.render(gen_kube.make_services(n, args.seed)))
            lines = sum(1 for _ in path.open())
            print(f"kube-proxy node, {n} services ({lines} lines):")
            rows: dict[str, Timing] = {}
            if can_ns:
                rows["iptables-nft-restore --test"] = measure(in_namespace(["iptables-nft-restore", "--test"]), 1,
                                                              stdin=path, timeout=args.timeout)
            rows["iptexplain reach"] = measure([*ipt, "reach", str(path)], 1, timeout=args.timeout)
            if args.lint:
                rows["iptexplain lint"] = measure([*ipt, "lint", str(path)], 1, ok=(0, 1), timeout=args.timeout)
            for name, t in rows.items():
                print(f"  {name:30} {_fmt(t)}")
            nft, reach = rows.get("iptables-nft-restore --test"), rows["iptexplain reach"]
            if nft is not None and nft.cpu and reach.cpu:
                print(f"  reach / nft-restore --test:    {reach.cpu / nft.cpu:.0f} x (cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
