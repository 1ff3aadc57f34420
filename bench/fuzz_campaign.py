"""The long fuzzing campaign of issue 14 (not in CI): many generated inputs through the real CLI.

Every input is a command line (``show`` or ``trace``) with its files: mutated windows of the real
rulesets in /work/shared/corpus (or the fixtures), random bytes, deep and looping chains, huge
numbers, odd Unicode, snapshot and ``--host`` files with wrong types, ipset dumps, flow options.
Each runs through ``iptexplain.cli.main`` in a long-lived child process that has a 1 GB address-
space limit (RLIMIT_AS); the parent gives each input 10 s and kills and restarts the child when
it does not answer (an input over 10 s) or dies.  An input may only end with exit 0-3 and, when
not 0/1/3, exactly one line on stderr; anything else is counted and kept under --keep DIR.

    nice -n 19 python bench/fuzz_campaign.py -n 100000 --seed 1 --keep /tmp/fuzz-findings

Prints the counts at the end (and every --every inputs): inputs, tracebacks, exit 4, over 10 s,
over 1 GB (a MemoryError under the limit, exit 5, or a child killed by it), bad stderr.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import string
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIRS = [Path("/work/shared/corpus"), ROOT / "fixtures"]
TIMEOUT = 10.0  # CPU seconds an input may take (ITIMER_PROF in the child: a shared, loaded machine
WALL = 300.0    # must not turn waiting for a core into "over 10 s"); the wall clock only backs it up
MEMORY = 1 << 30
BATCH = 100  # inputs per message to the child
RESTART_EVERY = 3000  # a fresh child now and then: caches and fragmentation stay bounded

ODD_WORDS = [
    "²", "٣", "７", "1_000", "+7", "-1", "0x", "0xFFFFFFFFFFFFFFFFFFFF", "9" * 5000, "1" * 4301,
    "", "!", "!!", "--", "-", "\x1b]0;x\x07", "\x1b[2J", "\x9b31m", "\u202e", "\ufeff", "\x00",
    "\u2028", "é", "🔥", "a" * 300, "65536", "256", "4294967296", "18446744073709551616", "0",
    "00000000000000000000000000000000000000000000001", "1:", ":1", "1-", "-1-", "/", "/33", "/129",
    "10.0.0.0/²", "::/²", "300.1.1.1", "1.2.3", "ff::ff::ff", "[::1]", "0/0", "eth0+", "+",
    '"', "'", '"unterminated', "\\", "'a b'", "#", "*filter", "COMMIT", ":X - [0:0]", "-A", "-N",
    "[1:2]", "[²:1]", "[99999999999999999999999:0]", "%", "${x}", "\t", "\r", "\n",
]
OPTIONS = [
    "-p", "-s", "-d", "-i", "-o", "-m", "-j", "-g", "--dport", "--sport", "--dports", "--sports",
    "--ctstate", "--state", "--mark", "--set-mark", "--set-xmark", "--to-destination",
    "--to-source", "--to-ports", "--limit", "--limit-burst", "--log-level", "--log-prefix",
    "--uid-owner", "--gid-owner", "--timestart", "--timestop", "--monthdays", "--weekdays",
    "--datestart", "--hashlimit-upto", "--hashlimit-burst", "--hashlimit-name", "--icmp-type",
    "--icmpv6-type", "--tcp-flags", "--comment", "--match-set", "--mode", "--probability",
    "--every", "--packet", "--u32", "--string", "--hex-string", "--algo", "--reject-with",
    "--tos", "--set-tos", "--dscp", "--mac-source", "--src-range", "--dst-range", "--length",
    "--ttl-gt", "--hl-eq", "--nfmask", "--ctmask", "--queue-num", "--set-class", "--clamp-mss-to-pmtu",
]
MODULES = ["tcp", "udp", "icmp", "conntrack", "state", "multiport", "mark", "connmark", "limit",
           "hashlimit", "owner", "time", "comment", "set", "statistic", "u32", "string", "iprange",
           "mac", "tos", "dscp", "length", "ttl", "hl", "addrtype", "physdev", "policy", "recent",
           "nosuch", "icmp6", "cgroup", "pkttype", "rpfilter", "socket", "helper", "quota"]
TARGETS = ["ACCEPT", "DROP", "RETURN", "REJECT", "LOG", "MARK", "CONNMARK", "DNAT", "SNAT",
           "MASQUERADE", "REDIRECT", "NFQUEUE", "NOTRACK", "CT", "TCPMSS", "TOS", "DSCP", "QUEUE"]
FLOW_WORDS = ["tcp", "udp", "icmp", "ipv6-icmp", "sctp", "47", "0", "all", "10.0.0.1", "::1",
              "172.17.0.6", "192.0.2.10", "198.51.100.1", "8.8.8.8", "eth0", "docker0", "lo", "cni0",
              "80", "443", "9525", "53", "22", "NEW", "ESTABLISHED", "RELATED", "INVALID",
              "UNTRACKED", "echo-request", "packet-too-big", "3/4", "8", "0x10", "web"]
FLOW_FLAGS = ["-p", "-s", "-d", "--sport", "--dport", "-i", "-o", "--state", "--mark", "--icmp-type",
              "--from-container", "-4", "-6", "--from-host", "--reply", "--json", "--format", "-v",
              "--backend", "--width", "--local", "--iface", "--route", "--input-format"]


# -- inputs -------------------------------------------------------------------------------------

def corpus_files() -> list[Path]:
    files = []
    for d in CORPUS_DIRS:
        if d.is_dir():
            files += sorted(p for p in d.rglob("*") if p.is_file() and p.suffix not in (".md", ".py")
                            and "aux" not in p.parts and p.stat().st_size < 2_000_000)
    return files


def odd_word(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        return rng.choice(ODD_WORDS)
    if r < 0.7:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 12)))
    if r < 0.85:
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x2FFF),
                                       rng.randint(0x1F300, 0x1F6FF)])) for _ in range(rng.randint(1, 6)))
    return str(rng.choice([rng.randint(0, 300), rng.randint(0, 70000), rng.getrandbits(rng.randint(1, 200))]))


def mutate_line(line: str, rng: random.Random) -> str:
    words = line.split(" ")
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        i = rng.randrange(len(words)) if words else 0
        if op == 0 and words:
            del words[i]
        elif op == 1 and words:
            words.insert(i, words[i])
        elif op == 2 and len(words) > 1:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        elif op == 3:
            words.insert(i, odd_word(rng))
        elif op == 4 and words:
            words[i] = odd_word(rng)
        elif op == 5 and words:
            words[i] = words[i][: rng.randint(0, len(words[i]))]
        elif op == 6:
            words.insert(i, rng.choice(OPTIONS))
        elif op == 7:
            words[i:i] = ["-m", rng.choice(MODULES), rng.choice(OPTIONS), odd_word(rng)]
    return " ".join(words)


def corpus_window(text: str, rng: random.Random, mutate: float = 1.0) -> str:
    """A piece of a real file: its table lines and a window of its rules, some lines mutated
    (``mutate`` scales how many).  Windows stay small so that each input costs milliseconds."""
    lines = text.splitlines()
    if len(lines) > 50:
        start = rng.randrange(len(lines) - 30)
        keep = [ln for ln in lines[:start] if ln[:1] in ("*", ":") or ln == "COMMIT"][-30:]
        body = lines[start:start + rng.randint(5, 30)]
        tail = [ln for ln in lines[start + 30:] if ln == "COMMIT" or ln.startswith("*")][:6]
        lines = keep + body + tail
    out = []
    for ln in lines:
        r = rng.random() / mutate if mutate else 1.0
        if r < 0.08:
            out.append(mutate_line(ln, rng))
        elif r < 0.09:
            continue
        elif r < 0.10:
            out += [ln, ln]
        else:
            out.append(ln)
    return "\n".join(out) + rng.choice(["\n", "", "\r\n", "\n\n\n"])


def deep_chains(rng: random.Random) -> str:
    n = rng.choice([10, 10, 100, 100, 1000, 3000])
    jump = rng.choice(["-j", "-g"])
    table = rng.choice(["filter", "mangle", "nat", "raw"])
    hook = {"filter": "INPUT", "mangle": "PREROUTING", "nat": "PREROUTING", "raw": "PREROUTING"}[table]
    decl = "".join(f":C{i} - [0:0]\n" for i in range(n))
    rules = f"-A {hook} -j C0\n" + "".join(f"-A C{i} {jump} C{i + 1}\n" for i in range(n - 1))
    if rng.random() < 0.5:  # a loop back
        rules += f"-A C{n - 1} {rng.choice(['-j', '-g'])} C{rng.randrange(n)}\n"
    else:
        rules += f"-A C{n - 1} -j {rng.choice(['ACCEPT', 'DROP', 'RETURN'])}\n"
    return f"*{table}\n:{hook} ACCEPT [0:0]\n{decl}{rules}COMMIT\n"


def statistic_forks(rng: random.Random) -> str:
    n = rng.randint(3, 10)
    rules = "".join(f"-A INPUT -m statistic --mode random --probability 0.5 -j MARK --set-xmark {i}/{i}\n"
                    for i in range(1, n))
    return f"*mangle\n:INPUT ACCEPT [0:0]\n{rules}COMMIT\n"


def random_bytes(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 10, 100, 1000, 10000])
    if rng.random() < 0.5:
        return bytes(rng.getrandbits(8) for _ in range(n))
    alphabet = b"*:-[]!/ \n\tACDEFGINOPRSTUacdefgimnoprst0123456789\x1b\x07\r"
    return bytes(rng.choice(alphabet) for _ in range(n))


def blank_runs(rng: random.Random) -> str:
    return rng.choice(["\n", " \n", "\t\n", "\r\n"]) * rng.randint(1000, 40000) + rng.choice(["", "x", "*filter\n"])


def long_line(rng: random.Random) -> str:
    unit = rng.choice(["x@", "a/", "1: ", "inet ", "/* ", "iptables ", "Chain ", " ", "\"", "[0:0] "])
    return unit * rng.randint(1000, 20000) + "\n"


def snapshot_doc(rng: random.Random, rules: str) -> str:
    from iptexplain.inputs.examples import load_example
    from iptexplain.host.readers import host_to_dict

    _, host = load_example("docker")
    doc: dict = {"schema": "iptexplain-snapshot", "version": 1, "created": "2026-01-01T00:00:00Z",
                 "hostname": "h", "tool": "fuzz", "backend": {"4": "nft"},
                 "rulesets": {"4": {"source": "iptables-nft-save", "how": "x", "text": rules}},
                 "notes": [{"kind": "live", "message": "m"}], "host": host_to_dict(host)}
    if rng.random() < 0.3:
        doc["ipsets"] = {"source": "ipset save", "text": "create s hash:ip family inet\nadd s 10.0.0.1\n"}
    for _ in range(rng.randint(1, 4)):
        mutate_json(doc, rng)
    return json.dumps(doc)


def mutate_json(doc, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    """Replace one value somewhere in the document by a value of another type or a bad one."""
    node, path = doc, []
    for _ in range(rng.randint(1, 5)):
        if isinstance(node, dict) and node:
            k = rng.choice(list(node))
            path.append((node, k))
            node = node[k]
        elif isinstance(node, list) and node:
            k = rng.randrange(len(node))
            path.append((node, k))
            node = node[k]
        else:
            break
    if not path:
        return
    parent, key = path[-1]
    parent[key] = rng.choice([None, 1.5, -1, 2 ** 70, "x", "", [], {}, ["x"], {"a": 1}, True,
                              "10.0.0.0/²", "300.1.1.1", "::g", "9" * 5000, "\x1b[31m", odd_word(rng)])


def host_json(rng: random.Random) -> str:
    doc = json.loads((ROOT / "fixtures/host" / rng.choice(["docker-ip-addr.json", "docker-ip-route.json"])).read_text())
    for _ in range(rng.randint(1, 4)):
        mutate_json(doc, rng)
    return json.dumps(doc)


def host_text(rng: random.Random) -> str:
    lines = ["1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN",
             "    inet 127.0.0.1/8 scope host lo",
             "2: eth0@if5: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UP",
             "    link/ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff",
             "    inet 192.0.2.10/24 brd 192.0.2.255 scope global eth0",
             "2: eth0    inet 192.0.2.10/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever",
             "default via 192.0.2.1 dev eth0", "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1",
             "10.0.0.0/8 via 192.0.2.254 dev eth0 metric ²"]
    return "\n".join(mutate_line(ln, rng) if rng.random() < 0.3 else ln for ln in lines) + "\n"


def ipset_text(rng: random.Random) -> str:
    lines = ["create s hash:ip family inet hashsize 1024 maxelem 65536", "add s 10.0.0.1",
             "create p hash:ip,port family inet", "add p 10.0.0.2,tcp:80", "add p 10.0.0.3,udp:1-2",
             "create n hash:net family inet6", "add n fe80::/64", "create l list:set", "add l s"]
    return "\n".join(mutate_line(ln, rng) if rng.random() < 0.3 else ln for ln in lines) + "\n"


def flow_args(rng: random.Random) -> list[str]:
    args: list[str] = []
    for _ in range(rng.randint(0, 5)):
        flag = rng.choice(FLOW_FLAGS)
        args.append(flag)
        if flag in ("-4", "-6", "--from-host", "--reply", "--json", "-v"):
            continue
        if flag == "--format":
            args.append(rng.choice(["rich", "json", "dot"]))
        elif flag == "--backend":
            args.append(rng.choice(["nft", "legacy"]))
        elif flag == "--input-format":
            args.append(rng.choice(["auto", "save", "S", "listing"]))
        elif flag == "--iface":
            args.append(rng.choice(["eth0=10.0.0.1/24", "x=", "=1.2.3.4/²", "lo=::1/129", odd_word(rng)]))
        elif flag == "--route":
            args.append(rng.choice(["default=eth0", "10.0.0.0/8=eth0,10.0.0.1", "x=y,z", "default=lo", odd_word(rng)]))
        else:
            args.append(rng.choice(FLOW_WORDS) if rng.random() < 0.7 else odd_word(rng))
    return args


def make_input(i: int, seed: int, corpus: list[Path], texts: dict) -> dict:
    """Input number ``i``: {args, files: {name: bytes}, stdin}; the same for the same seed."""
    rng = random.Random(f"{seed}:{i}")
    kind = rng.choices(["corpus", "bytes", "deep", "stat", "blank", "long", "snapshot", "host", "ipset",
                        "flow"], weights=[40, 6, 5, 3, 2, 3, 10, 10, 6, 15])[0]
    files: dict[str, bytes] = {}
    base_path = rng.choice(corpus)
    if base_path not in texts:
        texts[base_path] = base_path.read_text(errors="replace")
    base = texts[base_path]
    rules = corpus_window(base, rng, 1.0 if kind == "corpus" else 0.0)
    if kind == "bytes":
        files["in"] = random_bytes(rng)
    elif kind == "deep":
        files["in"] = deep_chains(rng).encode()
    elif kind == "stat":
        files["in"] = statistic_forks(rng).encode()
    elif kind == "blank":
        files["in"] = blank_runs(rng).encode()
    elif kind == "long":
        files["in"] = long_line(rng).encode()
    elif kind == "snapshot":
        files["in"] = snapshot_doc(rng, rules).encode()
    else:
        files["in"] = rules.encode("utf-8", errors="replace")
    command = rng.choice(["show", "trace", "trace"])
    args = [command, "in"]
    if command == "trace":
        args += flow_args(rng) if kind == "flow" or rng.random() < 0.4 else ["--dport", rng.choice(["80", "22", "9525"])]
        if kind == "host":
            files["host"] = (host_json(rng) if rng.random() < 0.6 else host_text(rng)).encode()
            args += ["--host", "host"]
        if kind == "ipset":
            files["ipset"] = ipset_text(rng).encode()
            args += ["--ipset", "ipset"]
        if kind in ("deep", "stat") and rng.random() < 0.5:
            args.append(rng.choice(["--json", "--format=dot", "-v"]))
    else:
        if rng.random() < 0.2:
            args += ["--format", rng.choice(["save", "S", "listing"])]
    return {"kind": kind, "args": args, "files": files}


# -- the child ----------------------------------------------------------------------------------

class Overtime(BaseException):
    """An input used its CPU seconds (a BaseException: the CLI's guard must not report it)."""


def child(conn, workdir: str) -> None:  # type: ignore[no-untyped-def]
    """Run inputs one after the other in this process, under the memory limit."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    os.chdir(workdir)
    os.environ.pop("IPTEXPLAIN_DEBUG", None)
    os.environ["NO_COLOR"] = "1"
    from click.testing import CliRunner

    from iptexplain import cli

    def overtime(signum, frame):  # type: ignore[no-untyped-def]
        raise Overtime

    signal.signal(signal.SIGPROF, overtime)
    runner = CliRunner()
    while True:
        batch = conn.recv()
        if batch is None:
            return
        for job in batch:
            run_one(conn, runner, cli.main, job)


def run_one(conn, runner, main, job: dict) -> None:  # type: ignore[no-untyped-def]
    """One input in this (child) process: its files written, the CLI run, the result sent."""
    for name in os.listdir("."):
        os.unlink(name)
    for name, data in job["files"].items():
        with open(name, "wb") as f:
            f.write(data)
    cpu = time.process_time()
    try:
        signal.setitimer(signal.ITIMER_PROF, TIMEOUT)
        try:
            r = runner.invoke(main, job["args"], catch_exceptions=True)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        tb = None
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            tb = "".join(traceback.format_exception(r.exception))[-3000:]
        conn.send({"code": r.exit_code, "stderr": r.stderr[-3000:], "tb": tb, "cpu": time.process_time() - cpu})
    except Overtime:
        conn.send({"code": "timeout", "stderr": "", "tb": None, "cpu": time.process_time() - cpu})
    except MemoryError:
        conn.send({"code": "memory", "stderr": "", "tb": None, "cpu": time.process_time() - cpu})


# -- the parent ---------------------------------------------------------------------------------

class Worker:
    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc = None
        self.done = 0

    def start(self) -> None:
        ctx = mp.get_context("fork")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=child, args=(child_conn, self.workdir), daemon=True)
        self.proc.start()
        self.done = 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def run(self, jobs: list[dict]) -> list[dict]:
        """The results of ``jobs``, in order.  The batch goes to the child in one message and the
        child answers job by job: at nice 19 on a loaded machine every hand-over between the two
        processes waits for a time slice, so one per batch, not two per input.  A child that
        dies or hangs is replaced and the rest of the batch goes to the new one."""
        outs: list[dict] = []
        while len(outs) < len(jobs):
            if self.proc is None or self.done >= RESTART_EVERY:
                self.stop()
                self.start()
            rest = jobs[len(outs):]
            t = time.monotonic()
            try:
                self.conn.send(rest)
            except (ConnectionError, OSError):
                self.stop()
                continue
            for _ in rest:
                try:
                    if not self.conn.poll(WALL):
                        self.stop()
                        outs.append({"code": "timeout", "stderr": "", "tb": None, "t": time.monotonic() - t})
                        break
                    out = self.conn.recv()
                except (EOFError, ConnectionError, OSError):
                    code = self.proc.exitcode if self.proc is not None else None
                    self.stop()
                    outs.append({"code": "died", "stderr": f"child died ({code})", "tb": None,
                                 "t": time.monotonic() - t})
                    break
                self.done += 1
                out["t"] = time.monotonic() - t
                t = time.monotonic()
                outs.append(out)
        return outs


def classify(out: dict) -> list[str]:
    code, err = out["code"], out["stderr"]
    found = []
    if out["tb"] or "Traceback" in err:
        found.append("traceback")
    if code == 4:
        found.append("exit4")
    if code == "timeout":
        found.append("over10s")
    if code in (5, "memory") or (code == "died" and "MemoryError" in err):
        found.append("over1GB")
    if code == "died":
        found.append("died")
    if isinstance(code, int) and code not in (0, 1, 2, 3, 4, 5):
        found.append("badexit")
    if code == 2 and len(err.strip("\n").splitlines()) != 1:
        found.append("badstderr")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="inputs to run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first input number (to resume)")
    ap.add_argument("--keep", default="/tmp/fuzz-findings", help="directory for failing inputs")
    ap.add_argument("--every", type=int, default=5000, help="print counts every N inputs")
    a = ap.parse_args()
    corpus = corpus_files()
    keep = Path(a.keep)
    keep.mkdir(parents=True, exist_ok=True)
    workdir = Path(keep, "work")
    workdir.mkdir(exist_ok=True)
    worker = Worker(str(workdir))
    counts = {k: 0 for k in ("inputs", "traceback", "exit4", "over10s", "over1GB", "died", "badexit", "badstderr")}
    kinds: dict[str, int] = {}
    signatures: dict[str, int] = {}
    texts: dict = {}
    cpu = [0.0]
    t0 = time.monotonic()
    try:
        for first in range(a.start, a.start + a.n, BATCH):
            numbers = range(first, min(first + BATCH, a.start + a.n))
            batch = [make_input(i, a.seed, corpus, texts) for i in numbers]
            for i, job, out in zip(numbers, batch, worker.run(batch)):
                counts["inputs"] += 1
                cpu[0] += out.get("cpu") or 0.0
                kinds[job["kind"]] = kinds.get(job["kind"], 0) + 1
                found = classify(out)
                for f in found:
                    counts[f] += 1
                if found:
                    sig = (out["tb"] or out["stderr"] or str(out["code"])).strip().splitlines()[-1][:200] + f" [{','.join(found)}]"
                    signatures[sig] = signatures.get(sig, 0) + 1
                    if signatures[sig] <= 3:
                        d = keep / f"{i:06d}"
                        d.mkdir(exist_ok=True)
                        for name, data in job["files"].items():
                            (d / name).write_bytes(data)
                        (d / "args.json").write_text(json.dumps({"args": job["args"], "kind": job["kind"], **out}, indent=1))
                if counts["inputs"] % a.every == 0:
                    report(counts, kinds, signatures, time.monotonic() - t0, cpu[0], partial=True)
    except KeyboardInterrupt:
        print("interrupted: the counts so far", flush=True)
    finally:
        worker.stop()
    report(counts, kinds, signatures, time.monotonic() - t0, cpu[0], partial=False)


def report(counts: dict, kinds: dict, signatures: dict, elapsed: float, cpu: float, partial: bool) -> None:
    print(f"{'progress' if partial else 'final'}: {counts['inputs']} inputs in {elapsed:.0f} s "
          f"({cpu:.0f} s of CPU in the child); "
          f"tracebacks {counts['traceback']}, exit 4 {counts['exit4']}, over 10 s {counts['over10s']}, "
          f"over 1 GB {counts['over1GB']}, children died {counts['died']}, other exit {counts['badexit']}, "
          f"exit 2 without exactly one stderr line {counts['badstderr']}", flush=True)
    if not partial:
        print("inputs by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    for sig, n in sorted(signatures.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {n:6d}  {sig}", flush=True)


if __name__ == "__main__":
    main()
