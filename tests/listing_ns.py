"""Print real ``iptables -L`` listings of a ruleset, inside a throw-away network namespace.

The listing reader is judged against iptables itself: each ruleset is loaded into the kernel of
a private ``unshare -n -m`` namespace with the real ``iptables-{nft,legacy}-restore``, then the
real ``iptables -nvL --line-numbers``, ``-nvxL``, ``-nL`` and ``-L`` print it, and
``iptables-save`` gives the kernel's own canonical dump to compare with.  One namespace (one
process) serves many rulesets; the ruleset is flushed between them.  Nothing here touches the
machine's own namespace.

Used two ways: from tests, :func:`run_jobs` starts ``unshare -n -m python3 listing_ns.py`` and
exchanges JSON; inside the namespace, ``main()`` runs the jobs read on stdin.

A job: ``{"text", "family": 4|6, "backend": "nft"|"legacy", "tables": [...], "sets":
[[name, dim, family]], "names": bool}``; its result: ``{"rc", "stderr", "save", "listings":
{table: {form: text}}}`` with forms ``nvL``, ``nvxL``, ``nL`` and (when ``names``) ``L``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TABLES = ("raw", "mangle", "nat", "filter", "security")
FORMS = {
    "nvL": ["-n", "-v", "-L", "--line-numbers"],
    "nvxL": ["-n", "-v", "-x", "-L"],
    "nL": ["-n", "-L"],
    "L": ["-L"],
}


def available() -> str | None:
    """None when the namespace can be made here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (unshare -n -m and iptables)"
    for tool in ("unshare", "iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore",
                 "nft", "ipset"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def run_jobs(jobs: list[dict[str, Any]], timeout: float = 900) -> list[dict[str, Any]]:
    """Run the jobs inside one fresh private namespace; results in the same order."""
    proc = subprocess.run(
        ["unshare", "-n", "-m", sys.executable, os.path.join(HERE, "listing_ns.py")],
        input=json.dumps(jobs), capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"namespace worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------------------------
# Inside the namespace.


def _tool(backend: str, family: int, what: str = "") -> str:
    return f"{'ip6tables' if family == 6 else 'iptables'}-{backend}{what}"


def _flush() -> None:
    subprocess.run(["nft", "flush", "ruleset"], capture_output=True)
    for fam in (4, 6):
        empty = "".join(f"*{t}\nCOMMIT\n" for t in TABLES)
        subprocess.run([_tool("legacy", fam, "-restore")], input=empty, capture_output=True, text=True)
    subprocess.run(["ipset", "destroy"], capture_output=True)


def _nfacct_add(name: str) -> None:
    """Create an nfacct object (``nfacct add NAME``) with a raw nfnetlink message: rules using
    ``-m nfacct`` cannot be committed before it exists."""
    import socket
    import struct

    NETLINK_NETFILTER, NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW, NFACCT_NAME = 12, 7, 0, 1
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


def _set_type(dim: int) -> str:
    return {1: "hash:ip", 2: "hash:ip,port", 3: "hash:ip,port,ip"}.get(dim, "hash:ip,port,ip")


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    _flush()
    fam = job.get("family", 4)
    backend = job.get("backend", "nft")
    for name in job.get("nfacct", []):
        try:
            _nfacct_add(name)
        except OSError:
            pass
    for name, dim, sfam in job.get("sets", []):
        subprocess.run(["ipset", "create", name, _set_type(int(dim)), "family",
                        "inet6" if sfam == 6 else "inet"], capture_output=True)
    p = subprocess.run([_tool(backend, fam, "-restore")], input=job["text"], capture_output=True, text=True)
    out: dict[str, Any] = {"rc": p.returncode, "stderr": p.stderr.strip(), "save": "", "listings": {}}
    if p.returncode != 0:
        return out
    out["save"] = subprocess.run([_tool(backend, fam, "-save")], capture_output=True, text=True).stdout
    forms = dict(FORMS)
    if not job.get("names"):
        forms.pop("L")
    for table in job["tables"]:
        out["listings"][table] = {
            form: subprocess.run([_tool(backend, fam), "-t", table] + args, capture_output=True, text=True,
                                 timeout=120).stdout
            for form, args in forms.items()
        }
    return out


def main() -> None:
    jobs = json.load(sys.stdin)
    results = [_run_job(j) for j in jobs]
    _flush()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
