"""The Linux bridge the nomad runtime's allocations hang off (Nomad's CNI bridge network).

The bridge's name and subnet are read from nomad/conf/agent.hcl, the one place they are set.
The runtime creates the bridge with its gateway address *before* Nomad starts, because the
agent's ``host_network "mesh"`` (where sidecars publish their mTLS port) is fingerprinted
from that interface at start-up; CNI's bridge plugin then adopts it as it is.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import EnvironmentProblem


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(next(self.subnet.hosts()))  # what CNI's host-local IPAM makes the gateway


def read_spec(agent_hcl: Path) -> BridgeSpec:
    text = agent_hcl.read_text()
    name = re.search(r'^\s*bridge_network_name\s*=\s*"([^"]+)"', text, re.M)
    subnet = re.search(r'^\s*bridge_network_subnet\s*=\s*"([^"]+)"', text, re.M)
    if not name or not subnet:
        raise EnvironmentProblem(f"{agent_hcl} must set client.bridge_network_name and bridge_network_subnet")
    return BridgeSpec(name.group(1), ipaddress.ip_network(subnet.group(1)))  # type: ignore[arg-type]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("ip") is None:
        raise EnvironmentProblem("the nomad runtime needs iproute2's `ip` (apt-get install iproute2)")
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise EnvironmentProblem(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def _addresses(name: str) -> list[dict[str, object]] | None:
    proc = _ip("-j", "addr", "show", "dev", name, check=False)
    if proc.returncode != 0:
        return None
    links = json.loads(proc.stdout or "[]")
    return [a for link in links for a in link.get("addr_info", [])]


def conflicting_route(spec: BridgeSpec) -> str | None:
    """A route of this machine that overlaps the subnet and is not our bridge's own."""
    for route in json.loads(_ip("-j", "-4", "route", "show").stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == spec.name:
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.overlaps(spec.subnet):
            return f"{dst} dev {route.get('dev')}"
    return None


def ensure(spec: BridgeSpec) -> bool:
    """Create the bridge with its gateway address if missing; True when this call created it."""
    addrs = _addresses(spec.name)
    created = addrs is None
    if created:
        clash = conflicting_route(spec)
        if clash:
            raise EnvironmentProblem(f"the nomad bridge subnet {spec.subnet} overlaps the route {clash}; "
                                     "change client.bridge_network_subnet in nomad/conf/agent.hcl")
        _ip("link", "add", spec.name, "type", "bridge")
        addrs = []
    if not any(a.get("local") == spec.gateway for a in addrs):
        _ip("addr", "add", f"{spec.gateway}/{spec.subnet.prefixlen}", "dev", spec.name)
    _ip("link", "set", spec.name, "up")
    return created


def remove(spec: BridgeSpec) -> bool:
    if _addresses(spec.name) is None:
        return False
    _ip("link", "del", spec.name)
    return True


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def remove_leftover_rules(spec: BridgeSpec, alloc_ids: Sequence[str] = ()) -> int:
    """Delete per-allocation CNI rules of our allocations that are still there; returns how many.

    CNI removes them when Nomad tears an allocation down; an agent that stopped first leaves
    them, and a stale DNAT on 127.0.0.1:3000 would silently take every later mesh's traffic.
    A rule is ours when its comment names one of ``alloc_ids`` or it reaches into our subnet.
    Nomad's forwarding rule for our bridge goes too. The shared chains (CNI-HOSTPORT-*,
    CNI-FORWARD, NOMAD-ADMIN) stay: other CNI users and Nomads need them.
    """
    if shutil.which("iptables") is None:
        return 0
    removed = 0
    for table in ("nat", "filter"):
        lines = _iptables("-t", table, "-S").stdout.splitlines()
        rules = [shlex.split(line) for line in lines if line.startswith("-A ")]

        def named(rule: list[str]) -> bool:
            return any(a in tok for tok in rule for a in alloc_ids)

        ours = {r[1] for r in rules if r[1].startswith("CNI-") and r[1] not in _SHARED_CHAINS
                and (named(r) or any(_in_subnet(tok, spec) for tok in r))}
        ours |= {r[r.index("-j") + 1] for r in rules if named(r) and "-j" in r} - _SHARED_CHAINS - _TARGETS
        for r in rules:
            jumps_to_ours = "-j" in r and r[r.index("-j") + 1] in ours and r[1] not in ours
            pins_an_alloc = r[1] == "CNI-FORWARD" and any(_in_subnet(tok, spec, host_only=True) for tok in r)
            admits_our_bridge = r[1] == "NOMAD-ADMIN" and "-o" in r and r[r.index("-o") + 1] == spec.name
            if not (jumps_to_ours or pins_an_alloc or admits_our_bridge):
                continue
            if _iptables("-t", table, "-D", *r[1:]).returncode == 0:
                removed += 1
        for chain in ours:
            _iptables("-t", table, "-F", chain)
            if _iptables("-t", table, "-X", chain).returncode == 0:
                removed += 1
    return removed


_TARGETS = {"ACCEPT", "DROP", "RETURN", "MASQUERADE", "DNAT", "SNAT", "MARK"}
_SHARED_CHAINS = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-FORWARD"}


def _in_subnet(token: str, spec: BridgeSpec, host_only: bool = False) -> bool:
    text = token.split(":")[0] if token.count(":") == 1 else token  # 10.0.0.5:3001 (DNAT target)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    if host_only and net.prefixlen != 32:
        return False
    return net.version == 4 and net.subnet_of(spec.subnet) and str(net.network_address) != spec.gateway


NETNS_DIR = Path("/var/run/netns")


def alloc_namespaces(alloc_ids: list[str]) -> list[str]:
    """The network namespaces Nomad made for these allocations that still exist."""
    return [a for a in alloc_ids if (NETNS_DIR / a).exists()]


def remove_namespaces(alloc_ids: list[str]) -> int:
    """Delete our allocations' leftover namespaces (their veth ends go with them)."""
    left = alloc_namespaces(alloc_ids)
    for ns in left:
        _ip("netns", "del", ns, check=False)
    return len(left)
