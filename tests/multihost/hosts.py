"""Two stand-in hosts on one machine: Linux network namespaces joined by a veth pair.

Each host is a network namespace with its own addresses, and everything started on it runs in a
mount namespace of its own with a private /dev/shm. The private /dev/shm matters: vLLM decides which
ranks share a node by whether they can open each other's shared memory, and over a shared /dev/shm
it would treat both "hosts" as one node and pass the pipeline's activations through memory instead
of the network.

    root namespace (the test, as a client)  10.200.1.1 --- 10.200.1.2  host A (node 0, HTTP)
                                                   host A  10.200.0.1 --- 10.200.0.2  host B (node 1)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "mxs"  # names of the namespaces and links, so a leftover from a killed run is recognisable


@dataclass(frozen=True)
class Host:
    netns: str
    addr: str  # on the link between the hosts
    ifname: str  # that link's interface, for Gloo (GLOO_SOCKET_IFNAME)
    client_addr: str | None = None  # where the test reaches it, for the HTTP host


HOST_A = Host(f"{PREFIX}-a", "10.200.0.1", f"{PREFIX}-ab", client_addr="10.200.1.2")
HOST_B = Host(f"{PREFIX}-b", "10.200.0.2", f"{PREFIX}-ba")
CLIENT_IF, CLIENT_PEER_IF, CLIENT_ADDR = f"{PREFIX}-c", f"{PREFIX}-ca", "10.200.1.1"


def why_not() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs iproute2's `ip` and util-linux's `unshare`"
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode != 0:
        return "cannot create namespaces here (a container without CAP_SYS_ADMIN?)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _remove() -> None:
    for host in (HOST_A, HOST_B):
        for pid in _pids(host):  # a process left by a killed run would keep the namespace alive
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
    subprocess.run(["ip", "link", "del", CLIENT_IF], capture_output=True)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """Create both namespaces and their links; remove them at the end, whatever happened."""
    _remove()
    try:
        for host in (HOST_A, HOST_B):
            _ip("netns", "add", host.netns)
            _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("link", "add", HOST_A.ifname, "netns", HOST_A.netns, "type", "veth", "peer", HOST_B.ifname,
            "netns", HOST_B.netns)  # fmt: skip
        _ip("link", "add", CLIENT_IF, "type", "veth", "peer", CLIENT_PEER_IF, "netns", HOST_A.netns)
        _ip("addr", "add", f"{CLIENT_ADDR}/24", "dev", CLIENT_IF)
        _ip("link", "set", CLIENT_IF, "up")
        _ip("-n", HOST_A.netns, "addr", "add", f"{HOST_A.client_addr}/24", "dev", CLIENT_PEER_IF)
        _ip("-n", HOST_A.netns, "link", "set", CLIENT_PEER_IF, "up")
        for host in (HOST_A, HOST_B):
            _ip("-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", host.ifname)
            _ip("-n", host.netns, "link", "set", host.ifname, "up")
        yield HOST_A, HOST_B
    finally:
        _remove()


def _pids(host: Host) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pids(host: Host) -> list[int]:
    """Every process on the host (in its network namespace)."""
    return _pids(host)


def sent_bytes(host: Host) -> int:
    """Bytes the host has sent over the link to the other host."""
    path = f"/sys/class/net/{host.ifname}/statistics/tx_bytes"
    out = subprocess.run(["ip", "netns", "exec", host.netns, "cat", path], capture_output=True, text=True)
    return int(out.stdout)


def start_on(host: Host, cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Run `cmd` on the host, in a mount namespace of its own with a private /dev/shm."""
    wrapped = [
        "ip", "netns", "exec", host.netns,
        "unshare", "--mount", "--propagation", "private",
        "sh", "-c", 'mount -t tmpfs -o size=2g shm /dev/shm && exec "$@"', "host-shell", *cmd,
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            wrapped, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    """Signal the host's command and wait for it; kill its whole session past `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def wait_gone(host: Host, timeout: float) -> list[int]:
    """Wait until no process is left on the host; return those still there at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := pids(host)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left
