"""Run real ``iptables-restore`` / ``iptables-save`` in a throw-away network namespace.

The judge of the round-trip tests is the real iptables, never our own code: a ruleset is loaded
into the kernel of a private ``unshare -n -m`` namespace and saved again by the real
``iptables-save``.  Many jobs run inside ONE namespace (one process) for speed; the ruleset is
flushed between jobs.  Nothing here touches the machine's own namespace.

Used two ways:

* from tests: :func:`run_jobs` starts ``unshare -n -m python3 iptables_ns.py`` and exchanges JSON;
* inside the namespace: ``main()`` reads the jobs on stdin and runs them.

A job is a dict ``{"text": ..., "family": 4|6, "test_only": bool, "sets": [[name, dim, family]],
"nfacct": [names]}``; its result ``{"rc": int, "stderr": str, "save": str}``.  ``sets`` and
``nfacct`` are placeholder objects a ruleset needs before it can be committed (INDEX.md "OK*").
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def available() -> str | None:
    """None when the kernel round-trip can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (unshare -n -m and iptables)"
    for tool in ("unshare", "iptables-nft-restore", "ip6tables-nft-restore", "iptables-nft-save", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def run_jobs(jobs: list[dict[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
    """Run the jobs inside one fresh private namespace; results in the same order."""
    return run_worker("iptables_ns.py", jobs, timeout)


def run_worker(script: str, jobs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Start ``unshare -n -m python3 SCRIPT`` (a worker module beside this one), hand it the jobs
    as JSON on stdin and read its JSON results (shared with listing_ns)."""
    proc = subprocess.run(
        ["unshare", "-n", "-m", sys.executable, os.path.join(HERE, script)],
        input=json.dumps(jobs), capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"namespace worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def normalize_save(text: str) -> list[str]:
    """iptables-save text without comment lines and counters (what the comparison ignores)."""
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            parts = line.split()
            line = " ".join(parts[:2] + ["[0:0]"])
        elif line.startswith("["):
            line = line[line.index("]") + 1 :].lstrip()
        out.append(line)
    return out


# ---------------------------------------------------------------------------------------------
# Inside the namespace.


def _nfacct_add(name: str) -> None:
    """Create an nfacct object (``nfacct add NAME``) with a raw nfnetlink message."""
    NETLINK_NETFILTER = 12
    NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW, NFACCT_NAME = 7, 0, 1
    NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 1, 4, 0x400
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        raw = name.encode() + b"\0"
        attr = struct.pack("HH", 4 + len(raw), NFACCT_NAME) + raw
        attr += b"\0" * ((4 - len(attr) % 4) % 4)
        payload = struct.pack("BBH", socket.AF_UNSPEC, 0, 0) + attr
        hdr = struct.pack("IHHII", 16 + len(payload), (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW,
                          NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 1, 0)
        s.send(hdr + payload)
        s.recv(4096)
    finally:
        s.close()


def _flush() -> None:
    subprocess.run(["nft", "flush", "ruleset"], capture_output=True)
    subprocess.run(["ipset", "destroy"], capture_output=True)


def _set_type(dim: int) -> str:
    return {1: "hash:ip", 2: "hash:ip,port", 3: "hash:ip,port,ip"}.get(dim, "hash:ip,port,ip")


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    _flush()
    for name, dim, fam in job.get("sets", []):
        subprocess.run(["ipset", "create", name, _set_type(int(dim)), "family",
                        "inet6" if fam == 6 else "inet"], capture_output=True)
    for name in job.get("nfacct", []):
        try:
            _nfacct_add(name)
        except OSError:
            pass
    v6 = job.get("family") == 6
    restore = "ip6tables-nft-restore" if v6 else "iptables-nft-restore"
    save = "ip6tables-nft-save" if v6 else "iptables-nft-save"
    args = [restore] + (["--test"] if job.get("test_only") else [])
    p = subprocess.run(args, input=job["text"], capture_output=True, text=True)
    out = ""
    if p.returncode == 0 and not job.get("test_only"):
        out = subprocess.run([save], capture_output=True, text=True).stdout
    return {"rc": p.returncode, "stderr": p.stderr.strip(), "save": out}


def main() -> None:
    jobs = json.load(sys.stdin)
    results = [_run_job(j) for j in jobs]
    _flush()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
