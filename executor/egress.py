"""The egress policy of tenant containers and build sandboxes, as host firewall rules.

Docker's bridges forward anywhere and the host accepts whatever reaches it from
them, so without this a tenant reaches the cloud metadata service, the LAN and
every host service that is not bound to loopback. Veil keeps three chains of the
filter table, rebuilt as a whole (`iptables-restore --noflush`) on every apply:

- VEIL-FN-OUT (from DOCKER-USER, for traffic leaving the functions' bridge):
  replies pass; the admin's allow-list and the host's DNS resolvers (port 53)
  pass; then, with policy "public", every special-purpose IPv4 range (private,
  CGNAT, loopback, link-local, multicast, reserved) and this host's own
  addresses and networks are refused, the rest of the internet passes; with
  policy "none" everything else is refused.
- VEIL-BUILD-OUT (from DOCKER-USER, the build network's bridge): replies and
  the allow-list pass, everything else is refused: builds go out only through
  the build proxy (executor/build_proxy.py).
- VEIL-IN (from INPUT, both bridges): replies pass, the build proxy's port
  passes from the build bridge, the allow-list passes; nothing else of this
  host is reachable from a tenant.

IPv4-mapped IPv6 destinations (::ffff:a.b.c.d) leave as IPv4 packets and meet
the same rules; native IPv6 from the bridges is refused outright (VEIL-V6).
Refusals are REJECTs (a TCP reset): a probe fails at once instead of hanging.
Applying is idempotent: at executor start and on every reconciler pass, so rules
lost to a reboot, or a bridge renamed by a recreated network, are put back.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import VeilError
from shared.settings import ExecutorSettings

if TYPE_CHECKING:
    from executor.docker_adapter import DockerAdapter

log = logging.getLogger("veil.executor.egress")

FN_CHAIN, BUILD_CHAIN, INPUT_CHAIN, V6_CHAIN = "VEIL-FN-OUT", "VEIL-BUILD-OUT", "VEIL-IN", "VEIL-V6"
# IANA special-purpose IPv4 ranges a tenant has no business reaching (RFC 6890 and
# successors), documentation ranges aside: some networks (this one) use them.
BLOCKED_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_ALLOW = re.compile(r"^(?P<net>[0-9./]+?)(?::(?P<port>\d{1,5}))?$")


class EgressError(VeilError):
    """The host firewall could not be set (not root, no iptables): tenants are not contained."""

    status = 503
    code = "egress_policy_unavailable"


@dataclass(frozen=True)
class AllowEntry:
    network: str  # normalised CIDR
    port: int | None  # TCP port, or every protocol and port

    def match(self) -> str:
        return f"-d {self.network}" + (f" -p tcp --dport {self.port}" if self.port else "")


def parse_allow(entries: Iterable[str]) -> tuple[AllowEntry, ...]:
    """`10.1.2.3`, `10.1.0.0/16` or `10.1.2.3:5432`; ValueError names a bad entry."""
    out = []
    for raw in entries:
        found = _ALLOW.match(raw.strip())
        try:
            if found is None:
                raise ValueError(raw)
            network = ipaddress.IPv4Network(found["net"], strict=False)
            port = int(found["port"]) if found["port"] else None
            if port is not None and not 0 < port < 65536:
                raise ValueError(raw)
        except ValueError:
            raise ValueError(f"egress allow entry {raw!r} is not ADDRESS[/PREFIX][:PORT]") from None
        out.append(AllowEntry(str(network), port))
    return tuple(out)


@dataclass(frozen=True)
class EgressPlan:
    policy: str  # public | none
    function_bridge: str
    build_bridge: str | None  # None: builds have no network
    proxy: tuple[str, int] | None  # the build proxy's address and port
    allow: tuple[AllowEntry, ...]
    resolvers: tuple[str, ...]
    host_networks: tuple[str, ...]  # this host's addresses and the networks they are on


def plan_for(settings: ExecutorSettings, docker: DockerAdapter) -> EgressPlan | None:
    """What the settings ask for on this host (None: egress is not managed)."""
    if settings.egress_policy == "off":
        return None
    builds = settings.build_network != "none"
    return EgressPlan(
        policy=settings.egress_policy,
        function_bridge=docker.bridge_name(settings.function_network),
        build_bridge=docker.bridge_name(settings.build_network) if builds else None,
        proxy=(docker.network_gateway(settings.build_network), settings.build_proxy_port)
        if builds
        else None,
        allow=parse_allow(settings.egress_allow),
        resolvers=host_resolvers(),
        host_networks=host_networks(),
    )


def ruleset(plan: EgressPlan) -> str:
    """The plan as `iptables-restore --noflush` input (declared chains are flushed)."""
    fn, build = [], []
    replies = "-m conntrack --ctstate RELATED,ESTABLISHED"
    fn.append(f"{replies} -j RETURN")
    fn += [f"{entry.match()} -j RETURN" for entry in plan.allow]
    for resolver in plan.resolvers:
        fn += [f"-d {resolver}/32 -p {proto} --dport 53 -j RETURN" for proto in ("udp", "tcp")]
    if plan.policy == "none":
        fn += _reject("")
    else:
        for network in (*BLOCKED_V4, *plan.host_networks):
            fn += _reject(f"-d {network} ")
    build.append(f"{replies} -j RETURN")
    build += [f"{entry.match()} -j RETURN" for entry in plan.allow]
    build += _reject("")
    inbound = [f"{replies} -j ACCEPT"]
    if plan.build_bridge and plan.proxy:
        host, port = plan.proxy
        inbound.append(f"-i {plan.build_bridge} -d {host}/32 -p tcp --dport {port} -j ACCEPT")
    inbound += [f"{entry.match()} -j ACCEPT" for entry in plan.allow]
    inbound += _reject("")
    lines = ["*filter"]
    lines += [f":{chain} - [0:0]" for chain in (FN_CHAIN, BUILD_CHAIN, INPUT_CHAIN)]
    lines += [f"-A {FN_CHAIN} {rule}" for rule in fn]
    lines += [f"-A {BUILD_CHAIN} {rule}" for rule in build]
    lines += [f"-A {INPUT_CHAIN} {rule}" for rule in inbound]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def jumps(plan: EgressPlan) -> list[tuple[str, str, str]]:
    """(built-in or Docker chain, bridge, Veil chain): where traffic enters the rules."""
    out = [
        ("DOCKER-USER", plan.function_bridge, FN_CHAIN),
        ("INPUT", plan.function_bridge, INPUT_CHAIN),
    ]
    if plan.build_bridge:
        out += [
            ("DOCKER-USER", plan.build_bridge, BUILD_CHAIN),
            ("INPUT", plan.build_bridge, INPUT_CHAIN),
        ]
    return out


def _reject(match: str) -> list[str]:
    return [f"{match}-p tcp -j REJECT --reject-with tcp-reset", f"{match}-j REJECT"]


def apply(plan: EgressPlan) -> None:
    """Make the host firewall say what `plan` says (idempotent); EgressError if it cannot."""
    if shutil.which("iptables-restore") is None:
        raise EgressError("iptables is not installed: tenant egress cannot be contained")
    _run(["iptables-restore", "--wait", "--noflush"], ruleset(plan))
    wanted = jumps(plan)
    for chain in ("DOCKER-USER", "INPUT"):
        for bridge, target in _our_jumps("iptables", chain):
            if (chain, bridge, target) not in wanted:  # a bridge that is gone
                _run(["iptables", "-w", "-D", chain, "-i", bridge, "-j", target])
    for chain, bridge, target in wanted:
        _ensure_jump("iptables", chain, bridge, target)
    if shutil.which("ip6tables") is not None:
        _run(["ip6tables", "-w", "-N", V6_CHAIN], check=False)
        _run(["ip6tables", "-w", "-F", V6_CHAIN])
        _run(["ip6tables", "-w", "-A", V6_CHAIN, "-j", "REJECT"])
        for chain in ("FORWARD", "INPUT"):
            for bridge, target in _our_jumps("ip6tables", chain):
                if bridge not in {b for _, b, _ in wanted}:
                    _run(["ip6tables", "-w", "-D", chain, "-i", bridge, "-j", target])
            for bridge in {b for _, b, _ in wanted}:
                _ensure_jump("ip6tables", chain, bridge, V6_CHAIN)


def _ensure_jump(tool: str, chain: str, bridge: str, target: str) -> None:
    rule = ["-i", bridge, "-j", target]
    if _run([tool, "-w", "-C", chain, *rule], check=False) != 0:
        _run([tool, "-w", "-I", chain, "1", *rule])


def _our_jumps(tool: str, chain: str) -> list[tuple[str, str]]:
    listing = subprocess.run(  # noqa: S603 - fixed argv
        [tool, "-w", "-S", chain], capture_output=True, text=True, check=False
    ).stdout
    out = []
    for line in listing.splitlines():
        found = re.match(r"^-A \S+ -i (\S+) -j (VEIL-[A-Z0-9-]+)$", line)
        if found:
            out.append((found[1], found[2]))
    return out


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> int:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, values validated above
            argv, input=stdin, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise EgressError(f"{argv[0]}: {exc}") from exc
    if check and done.returncode != 0:
        raise EgressError(f"{' '.join(argv[:4])} failed: {done.stderr.strip()[:300]}")
    return done.returncode


def host_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """The IPv4 nameservers Docker's embedded DNS forwards to (from the container's side)."""
    found = []
    try:
        text = resolv_conf.read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.IPv4Address(parts[1])
            except ValueError:
                continue
            if not address.is_loopback:  # a local stub: Docker then uses public resolvers
                found.append(str(address))
    return tuple(found)


def host_networks() -> tuple[str, ...]:
    """This host's IPv4 addresses (/32) and the networks they sit on, where BLOCKED_V4
    does not cover them already (loopback aside)."""
    listing = subprocess.run(  # noqa: S603 - fixed argv
        [shutil.which("ip") or "/usr/sbin/ip", "-4", "-o", "addr", "show"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    out: list[str] = []
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "inet":
            interface = ipaddress.IPv4Interface(fields[3])
            if interface.is_loopback:
                continue
            for network in (ipaddress.IPv4Network(f"{interface.ip}/32"), interface.network):
                covered = any(network.subnet_of(ipaddress.IPv4Network(b)) for b in BLOCKED_V4)
                if not covered and str(network) not in out:
                    out.append(str(network))
    return tuple(out)
