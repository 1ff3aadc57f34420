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
[[name, dim, family]], "names": bool, "forms": [...]}`` (forms: by default all but ``S``); its result: ``{"rc", "stderr", "save", "listings":
{table: {form: text}}}`` with forms ``nvL``, ``nvxL``, ``nL`` and (when ``names``) ``L``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from iptables_ns import _nfacct_add, _set_type, run_worker  # the namespace plumbing both share

TABLES = ("raw", "mangle", "nat", "filter", "security")
FORMS = {
    "nvL": ["-n", "-v", "-L", "--line-numbers"],
    "nvxL": ["-n", "-v", "-x", "-L"],
    "nL": ["-n", "-L"],
    "L": ["-L"],
    "S": ["-S"],
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
    return run_worker("listing_ns.py", jobs, timeout)


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
    forms = {f: FORMS[f] for f in job["forms"]} if job.get("forms") else dict(FORMS)
    if not job.get("names"):
        forms.pop("L", None)
    if not job.get("forms"):
        forms.pop("S")
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
