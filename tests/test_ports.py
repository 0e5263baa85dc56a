"""The test servers' ports come from outside the ranges Ray and the OS draw ports from."""

from __future__ import annotations

import socket
from pathlib import Path

from _ports import _candidate_range, free_port, free_ports


def test_a_free_port_is_outside_rays_worker_ports_and_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    port = free_port()
    assert port > 19999
    assert port < low or low <= 20999
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # and it is free


def test_a_held_port_is_never_returned() -> None:
    candidates = _candidate_range()
    held = []
    try:
        for _ in range(20):
            sock = socket.socket()
            sock.bind(("127.0.0.1", free_port()))
            held.append(sock)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) == 20
        assert all(p in candidates for p in taken)
        assert not taken & set(free_ports(50))
    finally:
        for sock in held:
            sock.close()


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5, "127.0.0.1", "127.0.0.2")
    assert len(set(ports)) == 5
