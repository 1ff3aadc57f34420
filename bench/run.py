#!/usr/bin/env python3
"""Time iptexplain at kube-proxy scale against iptables' own reader of the same file.

For each ruleset -- kube-proxy-shaped dumps of 1k, 10k and 30k services made by ``gen_kube.py``,
and the largest real iptables-save files of ``fixtures/`` -- this runs whole processes, as an
operator would, and keeps the best (min) and the median of ``--repeat`` runs plus the peak RSS:

* ``iptexplain --help``                    (start-up cost: must stay under 150 ms)
* ``iptexplain show FILE > /dev/null``
* ``iptexplain trace FILE -p tcp -s POD -i cni0 -d CLUSTERIP --dport N --json``  (a ClusterIP
  flow from the middle of KUBE-SERVICES whose service has several endpoints, so the trace forks
  on ``-m statistic``)
* ``iptables-nft-restore --test < FILE`` and ``iptables-legacy-restore --test < FILE``, each
  inside a throw-away ``unshare -n -m`` namespace (``--test`` parses and checks, commits nothing)
* in one process: parse time, and the trace's own time once the ruleset is parsed (the
  interactive cost of asking a second question: must stay under 50 ms)

and prints a table with the ratios the goals are stated in (trace / nft-restore --test below
0.5, peak memory below nft-restore's).  Nothing here touches the machine's own firewall.

Usage::

    sudo python bench/run.py                         # 1k, 10k, 30k + 3 largest fixtures
    python bench/run.py --sizes 1000,10000 --repeat 5 --markdown bench/RESULTS.md
    python bench/run.py --no-show --sizes 10000      # skip the (slow) show runs
    sudo python bench/run.py --layouts [--with-30k]  # one ruleset in every layout (issue 17)

``--layouts`` instead times one generated ruleset per size in each layout an operator has --
iptables-save, kube-proxy's own restore input, ``iptables -t nat -S`` and ``-nvL`` (printed by
the real iptables in a private namespace) and the save text on stdin -- beside
``iptables-nft-restore --test`` of the same rules; and a kube-proxy nftables-mode node of the
same size (``gen_kube_nft.py``) as ``nft list ruleset`` text and as ``nft -j`` JSON, beside
``nft -c -f`` of the text (``--no-nft`` leaves them out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_kube  # noqa: E402  (bench/ is not a package)
import gen_kube_nft  # noqa: E402

TIME = "/usr/bin/time"


@dataclass
class Timing:
    """Whole-process runs of one command: wall seconds and peak RSS (KiB) of each."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + system seconds
    rss_kb: list[int] = field(default_factory=list)
    status: int | None = None
    note: str = ""

    @property
    def best(self) -> float | None:
        return min(self.walls) if self.walls else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.walls) if self.walls else None

    @property
    def cpu(self) -> float | None:
        return min(self.cpus) if self.cpus else None

    @property
    def peak_mb(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb else None


def _iptexplain_cmd() -> list[str]:
    """The console script next to this interpreter (what an operator runs), not a shim."""
    script = Path(sys.executable).with_name("iptexplain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "iptexplain"]


# The measured processes run as after ``pip install``: with their bytecode compiled and cached
# (here under the bench's own directory, so the source tree stays clean) -- a development shell
# with PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on every start.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(cmd: list[str], repeat: int, stdin: Path | None = None, ok: tuple[int, ...] = (0,),
            timeout: float = 600.0, slow_after: float = 30.0, warmup: bool = False) -> Timing:
    """Run ``cmd`` ``repeat`` times under /usr/bin/time; stdout goes to /dev/null.

    A run slower than ``slow_after`` seconds is not repeated (the figure is clear enough).
    ``warmup`` runs it once first, unmeasured (bytecode cache, page cache).
    """
    t = Timing()
    if warmup:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=ENV, timeout=timeout)
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            full = [TIME, "-f", "%M %U %S", "-o", tf.name, *cmd] if os.path.exists(TIME) else cmd
            fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
            start = time.perf_counter()
            try:
                p = subprocess.run(full, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   timeout=timeout, env=ENV)
            except subprocess.TimeoutExpired:
                t.note = f"> {timeout:.0f} s (timeout)"
                return t
            finally:
                if stdin:
                    fin.close()  # type: ignore[union-attr]
            wall = time.perf_counter() - start
            t.status = p.returncode
            if p.returncode not in ok:
                err = p.stderr.decode(errors="replace").strip().splitlines()
                t.note = f"exit {p.returncode}: {err[-1] if err else ''}"[:120]
                return t
            t.walls.append(wall)
            try:
                rss, user, system = tf.read().strip().splitlines()[-1].split()
                t.rss_kb.append(int(rss))
                t.cpus.append(float(user) + float(system))
            except (ValueError, IndexError):
                pass
        if wall > slow_after:
            break
    return t


def in_namespace(cmd: list[str]) -> list[str]:
    """``cmd`` inside a fresh network + mount namespace (nothing of the host's is touched)."""
    return ["unshare", "-n", "-m", *cmd]


@dataclass
class Case:
    name: str
    path: Path
    trace_args: list[str]
    lines: int = 0
    results: dict[str, Timing] = field(default_factory=dict)
    inproc: dict = field(default_factory=dict)
    iptables_path: Path | None = None  # what iptables-restore reads, when not ``path`` itself


def generated_case(n: int, outdir: Path, seed: int) -> Case:
    services = gen_kube.make_services(n, seed)
    path = outdir / f"kube-{n}.save"
    if not path.exists():
        path.write_text(gen_kube.render(services))
    # A ClusterIP flow to a service from the middle of KUBE-SERVICES with several endpoints:
    # the trace walks half the chain and forks on the statistic cascade.
    mid = [s for s in services[n // 2:] if len(s.endpoints) >= 3 and s.proto == "tcp"][0]
    args = ["-p", "tcp", "-s", "10.244.77.7", "-i", "cni0", "-d", mid.cluster_ip, "--dport", str(mid.port)]
    return Case(f"kube {n // 1000}k services" if n >= 1000 else f"kube {n} services", path, args)


def _accepted(path: Path) -> bool:
    """Whether iptables-nft-restore --test takes the file (some fixtures hold anonymized MACs)."""
    exe = "ip6tables-nft-restore" if ".v6." in path.name else "iptables-nft-restore"
    if os.geteuid() != 0 or not shutil.which(exe):
        return True
    with open(path, "rb") as f:
        return subprocess.run(in_namespace([exe, "--test"]), stdin=f, capture_output=True).returncode == 0


ANONYMIZED_MAC = "XX:XX:XX:XX:XX:XX"  # how the corpus anonymized MAC addresses


def fixture_cases(count: int, outdir: Path) -> list[Case]:
    """The largest real iptables-save files in fixtures/.  One that iptables refuses only for its
    anonymized MAC addresses (the university firewall, 5,668 lines) is timed too: iptables-restore
    reads a copy with a made-up MAC in their place, iptexplain the file itself."""
    files = [p for p in (REPO / "fixtures").rglob("*") if p.is_file() and p.suffix in (".save", ".restore")]
    files.sort(key=lambda p: p.stat().st_size, reverse=True)
    out = []
    for p in files:
        if len(out) >= count:
            break
        v6 = ".v6." in p.name
        args = ["-p", "tcp", "--dport", "443"] + (["-6"] if v6 else [])
        if _accepted(p):
            out.append(Case(f"fixture {p.name}", p, args))
            continue
        text = p.read_text(errors="replace")
        if ANONYMIZED_MAC not in text:
            continue
        filled = outdir / f"mac-filled-{p.name}"
        filled.write_text(text.replace(ANONYMIZED_MAC, "02:00:00:00:00:01"))
        if _accepted(filled):
            out.append(Case(f"fixture {p.name} (iptables: MACs filled in)", p, args, iptables_path=filled))
    return out


INPROC = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from iptexplain.inputs.files import load
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
t1 = time.perf_counter()
c1 = time.process_time()
rs = load(sys.argv[1], progress=False)
t2 = time.perf_counter()
c2 = time.process_time()
a = json.loads(sys.argv[2])
flow = Flow(**a)
runs = []
for _ in range(5):
    s = time.process_time()
    tr = trace_flow(rs, flow, None, verbose=True)
    runs.append(time.process_time() - s)
leaves = list(tr.leaves()) if hasattr(tr, "leaves") else []
nrules = rs.rule_count()
del rs, tr
# What `trace` does: a large dump read lazily (rules read when the trace reaches them).
from iptexplain.inputs.stream import read_ruleset_or_text
c3 = time.process_time()
lazy = read_ruleset_or_text(sys.argv[1], progress=False, lazy=True)[0]
c4 = time.process_time()
if lazy is not None:
    trace_flow(lazy, flow, None, verbose=True)
c5 = time.process_time()
print(json.dumps({"import": t1 - t0, "parse": t2 - t1, "parse_cpu": c2 - c1, "trace_first": runs[0], "trace_min": min(runs),
                  "lazy_parse_cpu": c4 - c3 if lazy is not None else None, "lazy_trace_first": c5 - c4,
                  "rules": nrules, "leaves": len(leaves),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def flow_kwargs(trace_args: list[str]) -> dict:
    """The CLI flow options as Flow keyword arguments (for the in-process measurement)."""
    names = {"-p": "proto", "-s": "src", "-d": "dst", "-i": "iniface", "--dport": "dport"}
    out: dict = {"family": 4}
    it = iter(trace_args)
    for a in it:
        if a == "-6":
            out["family"] = 6
            continue
        v = next(it)
        out[names[a]] = int(v) if a == "--dport" else v
    return out


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "cpu": cpu, "nproc": str(os.cpu_count()), "ram": mem, "kernel": platform.release(),
        "python": platform.python_version(), "iptables": version(["iptables", "--version"]),
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?",
    }


def fmt_s(t: Timing | None) -> str:
    if t is None:
        return "-"
    if t.best is None:
        return t.note or "n/a"
    b, m = t.best, t.median
    if b < 1:
        return f"{b * 1000:.0f} ms" + (f" ({m * 1000:.0f})" if len(t.walls) > 1 else "")
    return f"{b:.2f} s" + (f" ({m:.2f})" if len(t.walls) > 1 else "")


def fmt_cpu(t: Timing | None) -> str:
    if t is None or t.cpu is None:
        return "-"
    return f"{t.cpu * 1000:.0f} ms" if t.cpu < 1 else f"{t.cpu:.2f} s"


def cpu_ratio(a: Timing | None, b: Timing | None) -> str:
    if a is None or b is None or not a.cpu or not b.cpu:
        return "-"
    return f"{a.cpu / b.cpu:.2f}"


def fmt_mb(t: Timing | None) -> str:
    return "-" if t is None or t.peak_mb is None else f"{t.peak_mb:.0f} MB"


def ratio(a: Timing | None, b: Timing | None) -> str:
    if a is None or b is None or a.best is None or b.best is None or b.best == 0:
        return "-"
    return f"{a.best / b.best:.2f}"


def run(args: argparse.Namespace) -> int:
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ENV["PYTHONPYCACHEPREFIX"] = str(outdir / "pycache")
    ipx = _iptexplain_cmd()
    cases = [generated_case(n, outdir, args.seed) for n in args.sizes] + fixture_cases(args.fixtures, outdir)
    can_ns = os.geteuid() == 0 and shutil.which("unshare") is not None
    info = machine()
    print(f"machine: {info['cpu']}, {info['nproc']} CPUs, {info['ram']}, Linux {info['kernel']}, "
          f"Python {info['python']}, {info['iptables']}, load {info['load']}", flush=True)

    helpt = measure([*ipx, "--help"], max(args.repeat, 5), warmup=True)
    baseline = measure([sys.executable, "-c", "pass"], max(args.repeat, 5), warmup=True)
    print(f"iptexplain --help: {fmt_s(helpt)} (python -c pass: {fmt_s(baseline)})", flush=True)

    for c in cases:
        c.lines = sum(1 for _ in open(c.path, "rb"))
        print(f"\n== {c.name}: {c.path} ({c.lines:,} lines)", flush=True)
        if can_ns:
            for backend in ("nft", "legacy"):
                exe = shutil.which(f"iptables-{backend}-restore") if ".v6." not in c.path.name else \
                    shutil.which(f"ip6tables-{backend}-restore")
                if exe and not (backend == "legacy" and args.no_legacy):
                    c.results[backend] = measure(in_namespace([exe, "--test"]), args.repeat,
                                                 stdin=c.iptables_path or c.path)
                    print(f"  {backend}-restore --test: {fmt_s(c.results[backend])} cpu {fmt_cpu(c.results[backend])} "
                          f"{fmt_mb(c.results[backend])}",
                          flush=True)
        c.results["trace"] = measure([*ipx, "trace", str(c.path), *c.trace_args, "--json"], args.repeat,
                                     ok=(0, 1, 3), timeout=args.timeout, warmup=True)
        print(f"  iptexplain trace: {fmt_s(c.results['trace'])} cpu {fmt_cpu(c.results['trace'])} "
              f"{fmt_mb(c.results['trace'])}", flush=True)
        if not args.no_show:
            c.results["show"] = measure([*ipx, "show", str(c.path)], args.repeat, timeout=args.timeout)
            print(f"  iptexplain show: {fmt_s(c.results['show'])} cpu {fmt_cpu(c.results['show'])} "
                  f"{fmt_mb(c.results['show'])}", flush=True)
        p = subprocess.run([sys.executable, "-c", INPROC, str(c.path), json.dumps(flow_kwargs(c.trace_args))],
                           capture_output=True, text=True, timeout=args.timeout, env=ENV)
        if p.returncode == 0:
            c.inproc = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"  in process: parse {c.inproc['parse']:.2f} s (cpu {c.inproc['parse_cpu']:.2f} s), trace after parse "
                  f"{c.inproc['trace_min'] * 1000:.0f} ms (first {c.inproc['trace_first'] * 1000:.0f} ms), "
                  f"{c.inproc['rules']:,} rules, {c.inproc['leaves']} leaves", flush=True)
            if c.inproc.get("lazy_parse_cpu") is not None:
                print(f"  in process, lazy as trace reads it: parse cpu {c.inproc['lazy_parse_cpu']:.2f} s, first trace "
                      f"cpu {c.inproc['lazy_trace_first'] * 1000:.0f} ms (rules read as it goes)", flush=True)
        else:
            print(f"  in process: failed: {p.stderr.strip().splitlines()[-1:]}", flush=True)

    table = report(cases, helpt, baseline, info)
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
        print(f"\nwritten to {args.markdown}")
    return 0


def report(cases: list[Case], helpt: Timing, baseline: Timing, info: dict[str, str]) -> str:
    """The results as Markdown tables, with the goals checked (on wall time, and on CPU time,
    which a busy machine disturbs less)."""
    out = [
        f"Machine: {info['cpu']}, {info['nproc']} CPUs, {info['ram']} RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, {info['iptables']} (load average at start: {info['load']}).",
        "",
        "Whole processes, bytecode cached as after `pip install`; wall time best of the runs (median "
        "in brackets), CPU = user + system of the best run; peak RSS from /usr/bin/time.",
        "",
        "| ruleset | lines | nft-restore --test | legacy-restore --test | iptexplain trace | trace / nft (wall, cpu) | "
        "iptexplain show | show / nft (wall, cpu) | parse in process | trace after parse (cpu) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(t: Timing | None) -> str:
        return f"{fmt_s(t)}, cpu {fmt_cpu(t)}, {fmt_mb(t)}"

    for c in cases:
        r = c.results
        nft, leg, tr, sh = r.get("nft"), r.get("legacy"), r.get("trace"), r.get("show")
        out.append(
            f"| {c.name} | {c.lines:,} | {cell(nft)} | {cell(leg)} | {cell(tr)} | {ratio(tr, nft)}, {cpu_ratio(tr, nft)} | "
            f"{cell(sh)} | {ratio(sh, nft)}, {cpu_ratio(sh, nft)} | "
            + (f"{c.inproc['parse']:.2f} s, cpu {c.inproc['parse_cpu']:.2f} s | {c.inproc['trace_min'] * 1000:.1f} ms "
               f"(first {c.inproc['trace_first'] * 1000:.0f} ms) |"
               if c.inproc else "- | - |")
        )
    out += ["", f"`iptexplain --help`: {fmt_s(helpt)}, cpu {fmt_cpu(helpt)} (bare `python -c pass` on this "
            f"machine: {fmt_s(baseline)}, cpu {fmt_cpu(baseline)}).", ""]
    goals = []
    ten = next((c for c in cases if c.name == "kube 10k services"), None)
    if ten is not None:
        tr, nft = ten.results.get("trace"), ten.results.get("nft")
        if tr and nft and tr.best and nft.best:
            goals.append(("10k parse + trace < 0.5 x nft-restore --test (wall)", f"{tr.best / nft.best:.2f} x",
                          tr.best < 0.5 * nft.best))
        if tr and nft and tr.cpu and nft.cpu:
            goals.append(("10k parse + trace < 0.5 x nft-restore --test (cpu)", f"{tr.cpu / nft.cpu:.2f} x",
                          tr.cpu < 0.5 * nft.cpu))
        if tr and nft and tr.peak_mb and nft.peak_mb:
            goals.append(("10k trace peak RSS < nft-restore's", f"{tr.peak_mb:.0f} MB vs {nft.peak_mb:.0f} MB",
                          tr.peak_mb < nft.peak_mb))
        if ten.inproc:
            goals.append(("10k trace after parse < 50 ms", f"{ten.inproc['trace_min'] * 1000:.1f} ms "
                          f"(first {ten.inproc['trace_first'] * 1000:.0f} ms)", ten.inproc["trace_first"] < 0.05))
    if helpt.best is not None:
        goals.append(("--help < 150 ms", f"{helpt.best * 1000:.0f} ms", helpt.best < 0.15))
    if goals:
        out += ["| goal | measured | met |", "|---|---:|:---:|"]
        out += [f"| {g} | {m} | {'yes' if ok else 'no'} |" for g, m, ok in goals]
    return "\n".join(out)


# -- layouts (issue 17): the same rules in every layout an operator has --------------------------


@dataclass
class Layout:
    """One layout of a generated ruleset: the file iptexplain reads (``stdin``: fed on standard
    input as ``-``), the extra options it needs, and the file ``iptables-nft-restore --test``
    reads as the yardstick of the same rules."""

    name: str
    path: Path
    yardstick: Path
    options: tuple[str, ...] = ()
    stdin: bool = False
    # nft rows (gen_kube_nft): the kernel tool's own reader of the same rules, ``nft -c -f
    # FILE`` (check mode: parsed and validated by the kernel, nothing committed), the trace's
    # own flow, and the layout whose answer is the reference
    yard_cmd: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    ref: Path | None = None
    lines: int = 0
    trace: Timing | None = None
    nft: Timing | None = None
    answer: tuple | None = None  # the trace's outcomes, to check every layout says the same
    same: bool = False


LAYOUT_NOTES = {
    "iptables-save": "the save text (nft backend's spelling, with its `# Generated by` header)",
    "kube-proxy restore input": "no header, every `:CHAIN` first, rules service by service (gen_kube.render_restore)",
    "iptables -t nat -S": "printed by the real iptables from the save text, in a private namespace (nat only)",
    "iptables -t nat -nvL": "printed by the real iptables from the save text, in a private namespace (nat only)",
    "iptables -t nat -nL": "the same, without -v: no interfaces, no counters (hidden -i/-o filled from kube-proxy's shapes)",
    "iptables -t nat -nvL on stdin": "the -nvL text as `iptexplain trace - -t nat`",
    "iptables-save on stdin": "the save text as `iptexplain trace -`",
    "iptables -t nat -S on stdin": "the -S text as `iptexplain trace - -t nat`",
    "nft list ruleset": "a kube-proxy nftables-mode node of the same size (gen_kube_nft.render: what nft "
                        "lists, element order aside; yardstick `nft -c -f FILE` in a private namespace)",
    "nft -j list ruleset": "the same node's JSON, listed by the real nft after `nft -f` in a private "
                           "namespace (yardstick: `nft -c -f` of the text)",
}
NFT_JSON_MAX = 10000  # the JSON needs the ruleset loaded by nft, which takes minutes past 10k


def nft_layouts(n: int, outdir: Path, seed: int) -> list[Layout]:
    """The ``n``-service kube-proxy nftables-mode node (gen_kube_nft) as text and as JSON, each
    beside ``nft -c -f`` of the text, with a ClusterIP flow of a service with several endpoints."""
    services = gen_kube_nft.make_services(n, seed)
    text = outdir / f"kube-{n}.nft"
    if not text.exists():
        text.write_text(gen_kube_nft.render(services))
    args = tuple(gen_kube_nft.trace_args(services))
    check = ("nft", "-c", "-f", str(text))
    out = [Layout("nft list ruleset", text, text, yard_cmd=check, args=args, ref=text)]
    js = outdir / f"kube-{n}.nft.json"
    if not js.exists() and n <= NFT_JSON_MAX:
        js.write_text(gen_kube_nft.kernel_listing(text.read_text(), timeout=3600)["json"])
    if js.exists():
        out.append(Layout("nft -j list ruleset", js, text, yard_cmd=check, args=args, ref=text))
    return out


def layout_cases(n: int, outdir: Path, seed: int) -> tuple[list[str], list[Layout]]:
    """The ``n``-service ruleset in each layout, and the trace options of a ClusterIP flow of a
    service with several endpoints from the middle of KUBE-SERVICES (as :func:`generated_case`)."""
    case = generated_case(n, outdir, seed)  # writes kube-N.save
    services = gen_kube.make_services(n, seed)
    restore = outdir / f"kube-{n}.restore"
    nat_save = outdir / f"kube-{n}.nat.save"
    s_path, l_path, nl_path = outdir / f"kube-{n}.nat.S", outdir / f"kube-{n}.nat.nvL", outdir / f"kube-{n}.nat.nL"
    if not restore.exists():
        restore.write_text(gen_kube.render_restore(services))
    if not nat_save.exists():
        nat_save.write_text(gen_kube.render(services, with_filter=False, with_mangle=False))
    if not (s_path.exists() and l_path.exists() and nl_path.exists()):
        views = gen_kube.iptables_listings(case.path.read_text(), "nat")
        s_path.write_text(views["S"])
        l_path.write_text(views["nvL"])
        nl_path.write_text(views["nL"])
    out = [
        Layout("iptables-save", case.path, case.path),
        Layout("kube-proxy restore input", restore, restore),
        Layout("iptables -t nat -S", s_path, nat_save, ("-t", "nat")),
        Layout("iptables -t nat -nvL", l_path, nat_save, ("-t", "nat")),
        Layout("iptables -t nat -nL", nl_path, nat_save, ("-t", "nat")),
        Layout("iptables -t nat -nvL on stdin", l_path, nat_save, ("-t", "nat"), stdin=True),
        Layout("iptables-save on stdin", case.path, case.path, stdin=True),
        Layout("iptables -t nat -S on stdin", s_path, nat_save, ("-t", "nat"), stdin=True),
    ]
    return case.trace_args, out


def _answer(cmd: list[str], stdin: Path | None) -> tuple | None:
    """Where the trace says the flow goes, layout-independently: the destinations (address, port)
    its outcomes reach -- the service's endpoints after DNAT.  -S / -nvL of the nat table leave
    the other tables unknown, so their outcomes fork on what filter may do; where the packets go
    is the same."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, stdin=fin, capture_output=True, env=ENV, timeout=600)
    finally:
        if stdin:
            fin.close()  # type: ignore[union-attr]
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        return None
    packets = [o["outcome"].get("packet") or {} for o in doc.get("outcomes", [])]
    return tuple(sorted({(pk.get("dst"), pk.get("dport")) for pk in packets}, key=repr)) or None


def run_layouts(args: argparse.Namespace) -> int:
    """The layouts table of issue 17: per size, per layout, ``iptexplain trace`` (read + trace,
    whole process) beside ``iptables-nft-restore --test`` of the same rules."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("iptables-nft-restore") is None:
        print("--layouts needs root, unshare and iptables-nft (the -S / -nvL layouts are printed by the "
              "real iptables in a private namespace, and the yardstick runs there)", file=sys.stderr)
        return 2
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ENV["PYTHONPYCACHEPREFIX"] = str(outdir / "pycache")
    ipx = _iptexplain_cmd()
    info = machine()
    print(f"machine: {info['cpu']}, {info['nproc']} CPUs, {info['ram']}, Linux {info['kernel']}, "
          f"Python {info['python']}, {info['iptables']}, load {info['load']}", flush=True)
    sizes = list(args.layout_sizes) + ([30000] if args.with_30k else [])
    rows: list[tuple[int, Layout]] = []
    view_rows: list[Row] = []  # show, and the small hosts
    for n in sizes:
        trace_args, layouts = layout_cases(n, outdir, args.seed) if not args.only_nft else ([], [])
        if args.nft:
            layouts += nft_layouts(n, outdir, args.seed)
        yard: dict[Path, Timing] = {}
        refs: dict[Path, tuple | None] = {}
        for lay in layouts:
            lay.lines = sum(1 for _ in open(lay.path, "rb"))
            if lay.yardstick not in yard:
                yard[lay.yardstick] = (measure(in_namespace(list(lay.yard_cmd)), args.repeat, timeout=args.timeout)
                                       if lay.yard_cmd else
                                       measure(in_namespace(["iptables-nft-restore", "--test"]), args.repeat,
                                               stdin=lay.yardstick))
            lay.nft = yard[lay.yardstick]
            flow = list(lay.args) if lay.args is not None else trace_args
            cmd = [*ipx, "trace", "-" if lay.stdin else str(lay.path), *lay.options, *flow, "--json"]
            lay.trace = measure(cmd, args.repeat, stdin=lay.path if lay.stdin else None, ok=(0, 1, 3),
                                timeout=args.timeout, warmup=True)
            lay.answer = _answer(cmd, lay.path if lay.stdin else None)
            ref = lay.ref or layouts[0].path
            if ref not in refs:
                refs[ref] = _answer([*ipx, "trace", str(ref), *flow, "--json"], None)
            lay.same = lay.answer is not None and lay.answer == refs[ref]
            print(f"  {n} services, {lay.name} ({lay.lines:,} lines): trace {fmt_s(lay.trace)} cpu "
                  f"{fmt_cpu(lay.trace)} {fmt_mb(lay.trace)}; {_yard_name(lay)} {fmt_s(lay.nft)} cpu "
                  f"{fmt_cpu(lay.nft)} {fmt_mb(lay.nft)}", flush=True)
            rows.append((n, lay))
        if not args.only_nft:
            view_rows.append(Row(f"show kube {n:,} services (iptables-save)", [*ipx, "show", str(layouts[0].path)],
                                 layouts[0].path))
    if not args.only_nft:
        view_rows += small_hosts(ipx)
    run_rows(view_rows, args.repeat, {lay.yardstick: lay.nft for _n, lay in rows if lay.nft is not None},
             args.timeout)
    table = layouts_report(rows, info, args.repeat) + ("\n\n" + rows_report(view_rows, args.repeat) if view_rows else "")
    print()
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
        print(f"\nwritten to {args.markdown}")
    return 0


def _yard_name(lay: Layout) -> str:
    return "nft -c -f" if lay.yard_cmd else "nft-restore --test"


# -- show and small hosts (issue 17): the view of the big dump, and start-up-bound traces -------

SEED = Path("/work/shared/seeds/000_0f7dba43e3b18fc2.txt")


@dataclass
class Row:
    """One command of iptexplain beside ``iptables-nft-restore --test`` of the same rules."""

    name: str
    cmd: list[str]
    yardstick: Path
    lines: int = 0
    ipx: Timing | None = None
    nft: Timing | None = None


def small_hosts(ipx: list[str]) -> list[Row]:
    """Traces of small hosts, where the start-up is the cost: the bundled Docker example, a ufw +
    Docker host of fixtures/, and the seed (an ``iptables -L`` paste: its yardstick is the same
    rules as iptables-save text, fixtures/seed-docker.v4.save)."""
    docker = REPO / "iptexplain" / "inputs" / "examples" / "docker.save"
    ufw = REPO / "fixtures" / "ufw-docker-combined.v4.save"
    rows = [
        Row("trace --example docker", [*ipx, "trace", "--example", "docker", "-p", "tcp", "-s", "203.0.113.7",
                                       "-i", "eth0", "--dport", "9525"], docker),
        Row("trace ufw + Docker host (fixtures/ufw-docker-combined.v4.save)",
            [*ipx, "trace", str(ufw), "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "--dport", "22"], ufw),
        Row("trace --example docker --json", [*ipx, "trace", "--example", "docker", "-p", "tcp", "-s",
                                              "203.0.113.7", "-i", "eth0", "--dport", "9525", "--json"], docker),
    ]
    if SEED.exists():
        rows.append(Row(f"trace the seed paste ({SEED.name}, an iptables -L listing)",
                        [*ipx, "trace", str(SEED), "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "--dport", "80"],
                        REPO / "fixtures" / "seed-docker.v4.save"))
    rows.append(Row("python -c pass (the interpreter's own start-up)", [sys.executable, "-c", "pass"], docker))
    return rows


def measure_exact(cmd: list[str], repeat: int, stdin: Path | None = None, ok: tuple[int, ...] = (0,),
                  warmup: bool = False) -> Timing:
    """:func:`measure` with the CPU time the kernel reports (``wait4`` of /usr/bin/time, which
    counts the command it waited for: microseconds), not /usr/bin/time's own 10 ms ticks --
    ``iptables-nft-restore --test`` of a 40-line file takes less than one tick.  The peak RSS is
    /usr/bin/time's (a ``wait4`` of a process forked from this one would count this one's)."""
    t = Timing()
    if warmup:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=ENV, timeout=600)
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
            start = time.perf_counter()
            try:
                p = subprocess.Popen([TIME, "-f", "%M", "-o", tf.name, *cmd], stdin=fin, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=ENV)
                _pid, status, usage = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
            finally:
                if stdin:
                    fin.close()  # type: ignore[union-attr]
            wall = time.perf_counter() - start
            t.status = p.returncode
            if p.returncode not in ok:
                t.note = f"exit {p.returncode}"
                return t
            t.walls.append(wall)
            t.cpus.append(usage.ru_utime + usage.ru_stime)
            try:
                t.rss_kb.append(int(tf.read().strip().splitlines()[-1]))
            except (ValueError, IndexError):
                pass
    return t


def run_rows(rows: list[Row], repeat: int, yard: dict[Path, Timing], timeout: float) -> None:
    for row in rows:
        row.lines = sum(1 for _ in open(row.yardstick, "rb"))
        if row.yardstick not in yard:
            yard[row.yardstick] = measure_exact(in_namespace(["iptables-nft-restore", "--test"]), repeat,
                                                stdin=row.yardstick)
        row.nft = yard[row.yardstick]
        big = row.lines > 10_000
        row.ipx = (measure(row.cmd, repeat, ok=(0, 1, 3), timeout=timeout, warmup=True) if big
                   else measure_exact(row.cmd, repeat, ok=(0, 1, 3), warmup=True))
        print(f"  {row.name}: {fmt_s(row.ipx)} cpu {fmt_cpu(row.ipx)} {fmt_mb(row.ipx)}; nft-restore --test "
              f"{fmt_s(row.nft)} cpu {fmt_cpu(row.nft)}", flush=True)


def rows_report(rows: list[Row], repeat: int) -> str:
    """The show and small-host rows as a Markdown table.  ``iptables-nft-restore --test`` of a
    small file takes less CPU than /usr/bin/time resolves (10 ms): its wall time is the yardstick."""
    out = [
        f"`iptexplain show` of the dump (output to /dev/null) and traces of small hosts, whole processes with "
        f"their bytecode cached, beside `iptables-nft-restore --test` of the same rules; best of {repeat} "
        "(median in brackets).",
        "",
        "Small files are timed with the process's own CPU time from `wait4` (microseconds); "
        "`iptables-nft-restore --test` of a 40-line file takes ~2 ms of CPU and ~30 ms of wall time (the "
        "namespace and netlink), so the wall ratio is the one the goal (≤ 3×) is stated in.",
        "",
        "| command | lines | nft-restore --test | iptexplain | time ratio (wall, cpu) | memory ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(f"| {r.name} | {r.lines:,} | {fmt_s(r.nft)}, cpu {fmt_cpu(r.nft)}, {fmt_mb(r.nft)} | "
                   f"{fmt_s(r.ipx)}, cpu {fmt_cpu(r.ipx)}, {fmt_mb(r.ipx)} | {ratio(r.ipx, r.nft)}, "
                   f"{cpu_ratio(r.ipx, r.nft)} | {mem_ratio(r.ipx, r.nft)} |")
    return "\n".join(out)


def mem_ratio(a: Timing | None, b: Timing | None) -> str:
    if a is None or b is None or not a.peak_mb or not b.peak_mb:
        return "-"
    return f"{a.peak_mb / b.peak_mb:.2f}"


def layouts_report(rows: list[tuple[int, Layout]], info: dict[str, str], repeat: int) -> str:
    """The layouts as one Markdown table, with the ratios the issue's goals are stated in
    (time ≤ 0.5×, peak memory ≤ 1× ``iptables-nft-restore --test`` of the same rules)."""
    out = [
        f"Machine: {info['cpu']}, {info['nproc']} CPUs, {info['ram']} RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, {info['iptables']} (load average at start: {info['load']}).",
        "",
        f"`iptexplain trace FILE … --json` (read + trace, whole process) beside `iptables-nft-restore "
        f"--test` of the same rules (for -S / -nvL, which hold the nat table only: the nat table's save "
        f"text); best of {repeat} (median in brackets), CPU = user + system, peak RSS from /usr/bin/time.  "
        "`same answer`: the trace's outcomes reach the same destinations (the service's endpoints, after "
        "DNAT) as the trace of the iptables-save text of the same rules.  The nft rows are a kube-proxy "
        "nftables-mode node of the same size beside `nft -c -f` of its text (the kernel tool's own reader: "
        "parsed and validated by the kernel in a private namespace, nothing committed); their same answer "
        "is the trace of the nft text.",
        "",
        "| services | layout | lines | nft-restore --test | iptexplain trace | time ratio (wall, cpu) | memory ratio | same answer |",
        "|---:|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for n, lay in rows:
        same = "yes" if lay.same else "no"
        out.append(f"| {n:,} | {lay.name} | {lay.lines:,} | {'nft -c -f: ' if lay.yard_cmd else ''}"
                   f"{fmt_s(lay.nft)}, cpu {fmt_cpu(lay.nft)}, {fmt_mb(lay.nft)} | "
                   f"{fmt_s(lay.trace)}, cpu {fmt_cpu(lay.trace)}, {fmt_mb(lay.trace)} | "
                   f"{ratio(lay.trace, lay.nft)}, {cpu_ratio(lay.trace, lay.nft)} | {mem_ratio(lay.trace, lay.nft)} | {same} |")
    out += ["", "Layouts:", ""] + [f"* {k}: {v}" for k, v in LAYOUT_NOTES.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 10000, 30000],
                    help="service counts of the generated rulesets (default 1000,10000,30000)")
    ap.add_argument("--fixtures", type=int, default=3, help="how many of the largest fixtures (default 3)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--outdir", default=os.path.join(tempfile.gettempdir(), "iptexplain-bench"))
    ap.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    ap.add_argument("--no-show", action="store_true", help="skip iptexplain show")
    ap.add_argument("--no-legacy", action="store_true", help="skip iptables-legacy-restore")
    ap.add_argument("--markdown", help="also write the table here")
    ap.add_argument("--layouts", action="store_true",
                    help="instead: the same generated ruleset in every layout (save, kube-proxy's restore "
                         "input, -S, -nvL, stdin) beside iptables-nft-restore --test (issue 17)")
    ap.add_argument("--layout-sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 10000],
                    help="service counts for --layouts (default 1000,10000)")
    ap.add_argument("--with-30k", action="store_true", help="--layouts at 30,000 services too")
    ap.add_argument("--no-nft", dest="nft", action="store_false",
                    help="--layouts without the kube-proxy nftables-mode rows (nft text and JSON beside nft -c -f)")
    ap.add_argument("--only-nft", action="store_true", help="--layouts with the nftables-mode rows only")
    args = ap.parse_args(argv)
    return run_layouts(args) if args.layouts else run(args)


if __name__ == "__main__":
    sys.exit(main())
