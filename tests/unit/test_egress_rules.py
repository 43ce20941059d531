"""The egress policy as firewall rules (executor/egress.py), without touching the firewall."""

from __future__ import annotations

import pytest

from executor.egress import BLOCKED_V4, EgressPlan, jumps, parse_allow, ruleset


def plan(**changes: object) -> EgressPlan:
    values: dict[str, object] = {
        "policy": "public",
        "function_bridge": "br-fn",
        "build_bridge": "br-build",
        "proxy": ("172.19.0.1", 3128),
        "allow": (),
        "resolvers": ("10.255.255.53",),
        "host_networks": ("192.0.2.2/32", "192.0.2.0/24"),
    }
    values.update(changes)
    return EgressPlan(**values)  # type: ignore[arg-type]


def chain(rules: str, name: str) -> list[str]:
    return [line.split(" ", 2)[2] for line in rules.splitlines() if line.startswith(f"-A {name} ")]


def test_public_policy_refuses_special_ranges_and_the_host_after_replies_and_dns() -> None:
    out = chain(ruleset(plan()), "VEIL-FN-OUT")
    assert out[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    assert out[1:3] == [
        "-d 10.255.255.53/32 -p udp --dport 53 -j RETURN",
        "-d 10.255.255.53/32 -p tcp --dport 53 -j RETURN",
    ]
    refused = {rule.split()[1] for rule in out[3:]}
    assert refused == {*BLOCKED_V4, "192.0.2.2/32", "192.0.2.0/24"}
    assert "169.254.0.0/16" in refused  # cloud metadata
    assert all("REJECT" in rule for rule in out[3:])


def test_deny_all_and_builds_end_in_one_refusal() -> None:
    out = chain(ruleset(plan(policy="none")), "VEIL-FN-OUT")
    assert out[-2:] == ["-p tcp -j REJECT --reject-with tcp-reset", "-j REJECT"]
    build = chain(ruleset(plan()), "VEIL-BUILD-OUT")
    assert build == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-p tcp -j REJECT --reject-with tcp-reset",
        "-j REJECT",
    ]


def test_host_input_is_refused_but_the_build_proxy_and_the_allow_list() -> None:
    allow = parse_allow(["10.1.2.3:5432", "10.9.0.0/16"])
    rules = ruleset(plan(allow=allow))
    inbound = chain(rules, "VEIL-IN")
    assert inbound == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-i br-build -d 172.19.0.1/32 -p tcp --dport 3128 -j ACCEPT",
        "-d 10.1.2.3/32 -p tcp --dport 5432 -j ACCEPT",
        "-d 10.9.0.0/16 -j ACCEPT",
        "-p tcp -j REJECT --reject-with tcp-reset",
        "-j REJECT",
    ]
    # The allow-list comes before any refusal for functions and builds too.
    assert chain(rules, "VEIL-FN-OUT")[1] == "-d 10.1.2.3/32 -p tcp --dport 5432 -j RETURN"
    assert chain(rules, "VEIL-BUILD-OUT")[2] == "-d 10.9.0.0/16 -j RETURN"
    assert (
        "DOCKER-USER",
        "br-build",
        "VEIL-BUILD-OUT",
    ) in jumps(plan())
    assert [j for j in jumps(plan(build_bridge=None, proxy=None)) if j[1] == "br-build"] == []


@pytest.mark.parametrize(
    "entry", ["example.com", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.0/33", "-j ACCEPT"]
)
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="egress allow entry"):
        parse_allow([entry])
