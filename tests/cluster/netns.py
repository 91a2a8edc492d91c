"""A private IPv4 network of Linux network namespaces, for partition tests (iproute2 only).

Every host (a temper node, the Cassandra nodes) runs in a namespace of its own, linked by a
veth pair to a router namespace; the test process itself reaches the network from the root
namespace over one more veth pair. The router forwards between its ports, and a cut is a
policy rule in the router (`ip rule add from A to B blackhole`): it drops the packets it
would forward from A to B without a word, as a broken switch or a firewall would, so the
sender sees its TCP connects and calls time out rather than fail at once. A cut is one way;
`cut(a, b)` cuts both. Nothing is cut between the test process and a host.

    root ns  10.213.0.1 --+
                          |
    <prefix>-a 10.213.0.11 --+-- <prefix>-hub (forwards; 10.213.0.254 on every port)
    <prefix>-b 10.213.0.12 --+
    ...

Addresses are /32s routed through the hub, so no ARP crosses it. Namespaces and links are
named with the network's prefix: `destroy()` removes them, and `remove_leftovers(prefix)`
removes those of an earlier run that crashed (killing the processes still inside them,
which that run started). Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); `problem()` says why
this machine cannot make one, for a test to skip with.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

SUBNET = "10.213.0"
ROUTER = f"{SUBNET}.254"
ROOT = f"{SUBNET}.1"
RULE_PREF = 100


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


def problem(prefix: str = "tprobe") -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    name = f"{prefix}-{os.getpid()}"
    out = ip("netns", "add", name, check=False)
    if out.returncode != 0:
        return f"cannot create a network namespace: {out.stderr.strip()}"
    try:
        a, b = f"{prefix}{os.getpid()}a"[-15:], f"{prefix}{os.getpid()}b"[-15:]
        out = ip("link", "add", a, "type", "veth", "peer", "name", b, check=False)
        if out.returncode != 0:
            return f"cannot create a veth pair: {out.stderr.strip()}"
        ip("link", "del", a, check=False)
    finally:
        ip("netns", "del", name, check=False)
    return None


def namespaces(prefix: str) -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{prefix}-")]


def remove_leftovers(prefix: str) -> list[str]:
    """Remove the namespaces and root-namespace links named `<prefix>-...` that an earlier
    run left behind (killing the processes still running in those namespaces); returns what
    was removed."""
    removed = []
    for ns in namespaces(prefix):
        pids = ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", ns, check=False)
        removed.append(ns)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(f"{prefix}-"):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Host:
    name: str
    address: str
    netns: str

    def exec_prefix(self) -> list[str]:
        """Prepended to a command line, runs it in this host's namespace (same process:
        `ip netns exec` enters the namespace and execs the command)."""
        return ["ip", "netns", "exec", self.netns]


@dataclass
class Network:
    """A router namespace, and the root namespace linked to it; hosts are added by name."""

    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)
    cuts: set[tuple[str, str]] = field(default_factory=set)
    made: bool = False

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    def create(self) -> Network:
        remove_leftovers(self.prefix)
        self.made = True
        ip("netns", "add", self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        # Forward between ports; answer for nothing but the router address.
        subprocess.run(
            [
                *Host("hub", ROUTER, self.hub).exec_prefix(),
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
            check=True,
            capture_output=True,
            timeout=20,
        )
        # The test process's own port, in the root namespace.
        self._link(f"{self.prefix}-root", None, ROOT)
        return self

    def _link(self, name: str, netns: str | None, address: str) -> None:
        """A veth pair: `name` (moved into `netns` unless None, holding `address`) and
        `name`-r on the hub."""
        port = f"{name}-r"
        assert len(port) <= 15, f"interface name too long: {port}"
        ip("link", "add", name, "type", "veth", "peer", "name", port)
        ip("link", "set", port, "netns", self.hub)
        ip("-n", self.hub, "addr", "add", f"{ROUTER}/32", "dev", port)
        ip("-n", self.hub, "link", "set", port, "up")
        ip("-n", self.hub, "route", "add", f"{address}/32", "dev", port)
        where = []
        if netns is not None:
            ip("link", "set", name, "netns", netns)
            where = ["-n", netns]
        ip(*where, "addr", "add", f"{address}/32", "dev", name)
        ip(*where, "link", "set", name, "up")
        ip(*where, "route", "add", f"{ROUTER}/32", "dev", name)
        ip(*where, "route", "add", f"{SUBNET}.0/24", "via", ROUTER, "dev", name, "src", address)

    def add_host(self, name: str, octet: int, *extra_octets: int) -> Host:
        """A namespace `<prefix>-<name>` with address SUBNET.octet (and more addresses, one
        per extra octet: three Cassandra nodes share one namespace)."""
        netns = f"{self.prefix}-{name}"
        ip("netns", "add", netns)
        ip("-n", netns, "link", "set", "lo", "up")
        address = f"{SUBNET}.{octet}"
        self._link(netns, netns, address)
        for extra in extra_octets:
            more = f"{SUBNET}.{extra}"
            ip("-n", netns, "addr", "add", f"{more}/32", "dev", netns)
            ip("-n", self.hub, "route", "add", f"{more}/32", "dev", f"{netns}-r")
        host = Host(name, address, netns)
        self.hosts[name] = host
        return host

    def addresses(self, host: str) -> list[str]:
        out = ip(
            "-n", self.hosts[host].netns, "-o", "-4", "addr", "show", "dev", self.hosts[host].netns
        )
        return [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]

    def _rule(self, action: str, src: str, dst: str) -> None:
        ip("-n", self.hub, "rule", action, "pref", str(RULE_PREF), "from", f"{src}/32",
           "to", f"{dst}/32", "blackhole")  # fmt: skip

    def cut(self, a: str, b: str) -> float:
        """Drop every packet between hosts `a` and `b` (both ways); the time.monotonic() of
        the cut."""
        for src in self.addresses(a):
            for dst in self.addresses(b):
                for pair in ((src, dst), (dst, src)):
                    if pair not in self.cuts:
                        self._rule("add", *pair)
                        self.cuts.add(pair)
        return time.monotonic()

    def heal(self) -> float:
        """Remove every cut; the time.monotonic() of the heal."""
        for pair in sorted(self.cuts):
            self._rule("del", *pair)
        self.cuts.clear()
        return time.monotonic()

    def destroy(self) -> None:
        if self.made:
            remove_leftovers(self.prefix)
            self.made = False
