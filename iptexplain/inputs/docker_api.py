"""Name containers in a trace: ask the Docker Engine API which container has which address.

``GET /containers/json`` over the unix socket ``/var/run/docker.sock`` -- with the standard
library's http.client on a unix-socket connection -- gives each running container's name, image,
addresses on its networks and published ports.  So 172.17.0.6 can be shown as
``gallant_lumiere (aylei/aliyun-exporter:0.3.1, 9525/tcp published)``.

Optional in every way: no socket, no permission, no daemon, a slow or odd answer -- every failure
is silent and leaves the model without names.  One GET with a one-second timeout; nothing is
written to the daemon.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from iptexplain.host.model import HostModel

DOCKER_SOCKET = "/var/run/docker.sock"
TIMEOUT = 1.0
MAX_BODY = 16 * 1024 * 1024


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection over a unix stream socket."""

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def list_containers(path: str = DOCKER_SOCKET, timeout: float = TIMEOUT) -> list[dict] | None:
    """The daemon's ``/containers/json`` list, or None when it cannot be had."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/containers/json", headers={"Host": "docker", "Accept": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        body = resp.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return None
        data = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    return data if isinstance(data, list) else None


def _ports(c: dict) -> list[str]:
    """Ports as ``docker ps`` shows them: ``0.0.0.0:9525->9525/tcp``, ``[::]:9525->9525/tcp``,
    ``8080/tcp`` (exposed, not published)."""
    out: list[str] = []
    for p in c.get("Ports") or []:
        if not isinstance(p, dict) or "PrivatePort" not in p:
            continue
        proto = str(p.get("Type", "tcp"))
        private = int(p["PrivatePort"])
        if p.get("PublicPort") is not None:
            ip = str(p.get("IP") or "0.0.0.0")
            host = f"[{ip}]" if ":" in ip else ip
            text = f"{host}:{int(p['PublicPort'])}->{private}/{proto}"
        else:
            text = f"{private}/{proto}"
        if text not in out:
            out.append(text)
    return out


def containers_by_address(data: list[dict]) -> dict[str, dict]:
    """address -> {name, image, id, network, ports} for every container address (v4 and v6)."""
    out: dict[str, dict] = {}
    for c in data:
        if not isinstance(c, dict):
            continue
        try:
            names = [n.lstrip("/") for n in c.get("Names") or [] if isinstance(n, str)]
            name = names[0] if names else str(c.get("Id", ""))[:12]
            networks = ((c.get("NetworkSettings") or {}).get("Networks") or {})
            ports = _ports(c)
            for net_name, net in networks.items():
                if not isinstance(net, dict):
                    continue
                for key in ("IPAddress", "GlobalIPv6Address"):
                    addr = net.get(key)
                    if addr:
                        out[str(addr)] = {
                            "name": name, "image": str(c.get("Image", "")), "id": str(c.get("Id", ""))[:12],
                            "network": str(net_name), "ports": ports,
                        }
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def describe(info: dict) -> str:
    """``gallant_lumiere (aylei/aliyun-exporter:0.3.1, 9525/tcp published)``."""
    published: list[str] = []
    for port in info.get("ports", []):
        text = str(port)
        if "->" in text:  # HOST:PUBLIC->PRIVATE/PROTO: the host port is what is published
            public = text.split("->", 1)[0].rsplit(":", 1)[-1]
            proto = text.rsplit("/", 1)[-1]
            if f"{public}/{proto}" not in published:
                published.append(f"{public}/{proto}")
    extra = [str(info["image"])] if info.get("image") else []
    if published:
        extra.append(", ".join(published) + " published")
    name = str(info.get("name", "?"))
    return f"{name} ({', '.join(extra)})" if extra else name


def socket_path() -> str:
    """The daemon's socket: ``DOCKER_HOST=unix:///path`` when set to a unix socket, else the
    standard one (a TCP ``DOCKER_HOST`` is not followed: names are never worth a network call)."""
    env = os.environ.get("DOCKER_HOST", "")
    if env.startswith("unix://") and len(env) > len("unix://"):
        return env[len("unix://"):]
    return DOCKER_SOCKET


def add_containers(host: HostModel, path: str | None = None, timeout: float = TIMEOUT) -> int:
    """Fill ``host.containers`` from the Docker API when it answers; the number added."""
    path = path or socket_path()
    data = list_containers(path, timeout)
    if not data:
        return 0
    found = containers_by_address(data)
    host.containers.update(found)
    if found:
        host.notes.append(f"{len(found)} container address(es) named by the Docker API ({path})")
    return len(found)
