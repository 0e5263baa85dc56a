"""Ports for the servers the tests start, drawn where no other process of the test run draws its own.

Asking the OS for port 0 returns a port from the kernel's ephemeral range, and the port is free again
once the probing socket closes. Ray binds its GCS, raylet and agent ports the same way, and its worker
ports in 10002-19999, so a Ray started in the meantime could take the port a test meant for its MLflow
server (CI saw `/health` answered by a gRPC server). So ports come from between Ray's worker range and
the ephemeral range, where nothing picks ports by itself.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RAY_WORKER_PORTS_MAX = 19999  # Ray's default max_worker_port


def _candidate_range() -> range:
    low = 32768  # Linux's default ephemeral start; also where the BSDs' and macOS's range starts or above
    try:
        low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    if low <= _RAY_WORKER_PORTS_MAX + 1000:  # an ephemeral range set unusually low: fall back to above it
        return range(61000, 65535)
    return range(_RAY_WORKER_PORTS_MAX + 1, low)


def free_port(*hosts: str) -> int:
    """A TCP port free on every given host address (127.0.0.1 by default), outside the OS's ephemeral range."""
    hosts = hosts or ("127.0.0.1",)
    candidates = _candidate_range()
    rng = random.Random()  # not the global generator, which tests seed
    for _ in range(200):
        port = rng.choice(candidates)
        try:
            for host in hosts:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free TCP port in {candidates.start}..{candidates.stop - 1} on {', '.join(hosts)}")


def free_ports(count: int, *hosts: str) -> list[int]:
    """`count` distinct ports, each as from `free_port`."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(*hosts)
        if port not in ports:
            ports.append(port)
    return ports
