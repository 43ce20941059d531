from __future__ import annotations

import pytest

from gateway.dataplane.paths import normalise, route_path, split


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/echo/x", b"/echo/x"),
        (b"/echo/", b"/echo/"),
        (b"/", b"/"),
        (b"/echo/../other/x", b"/other/x"),
        (b"/echo/%2e%2e/other/x", b"/other/x"),
        (b"/echo/.%2E/other/x", b"/other/x"),
        (b"/echo/%2E./other", b"/other"),
        (b"/echo/./x/.", b"/echo/x/"),
        (b"/echo/a/b/..", b"/echo/a/"),
        (b"/../../../etc/passwd", b"/etc/passwd"),
        (b"/echo/%252e%252e/x", b"/echo/%252e%252e/x"),  # double-encoded: a literal name
        (b"/echo/a%20b?", b"/echo/a%20b?"),
        (b"/echo/files/a%2Fb", b"/echo/files/a%2Fb"),  # an encoded slash in a name
    ],
)
def test_dot_segments_are_removed_before_routing(raw: bytes, expected: bytes) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [b"/echo/..%2fother", b"/echo/..%2Fx", b"/echo/%5c..", b"/echo/a\\..\\x", b"/e/%00"],
)
def test_dot_segments_behind_encoded_separators_and_nul_are_refused(raw: bytes) -> None:
    assert normalise(raw) is None


def test_split_decodes_the_slug_and_keeps_the_rest_encoded() -> None:
    routed = split(b"/%65cho/a%20b/c")
    assert routed is not None
    assert (routed.slug, routed.rest) == ("echo", b"a%20b/c")
    assert split(b"/%ff/x") is None
    root = split(b"/")
    assert root is not None
    assert root.slug == ""


@pytest.mark.parametrize(
    "raw",
    [b"/echo/x", b"/echo/../other/x", b"/echo/..%2fother", b"/%ff/x", b"/" + b"a/" * 300],
)
def test_route_path_is_split_of_normalise_memoised_or_not(raw: bytes) -> None:
    normalised = normalise(raw)
    expected = split(normalised) if normalised is not None else None
    assert route_path(raw) == expected
    assert route_path(raw) == expected  # the second answer may come from the memo
