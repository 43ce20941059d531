from __future__ import annotations

import hashlib
import math

import pytest

from shared.auth import api_keys


def test_format_length_and_entropy() -> None:
    issued = api_keys.generate()
    assert issued.plaintext.startswith("veil_live_")
    assert len(issued.plaintext) == api_keys.KEY_LENGTH == 48
    assert math.log2(len(api_keys.ALPHABET)) * api_keys.RANDOM_LENGTH >= 190
    assert set(issued.plaintext[10:]) <= set(api_keys.ALPHABET)
    assert api_keys.well_formed(issued.plaintext)


def test_prefix_and_hash() -> None:
    issued = api_keys.generate()
    assert issued.prefix == issued.plaintext[:16] + "…"
    assert issued.key_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    assert api_keys.hash_key(issued.plaintext) == issued.key_hash  # stable
    assert len(issued.key_hash) == 64
    assert issued.plaintext not in repr(issued)


def test_checksum_catches_every_one_character_typo() -> None:
    plaintext = api_keys.generate().plaintext
    for position in range(len("veil_live_"), len(plaintext)):
        for replacement in "0aZ":
            if plaintext[position] == replacement:
                continue
            typo = plaintext[:position] + replacement + plaintext[position + 1 :]
            assert not api_keys.well_formed(typo), (position, replacement)


def test_two_adjacent_characters_swapped_is_refused() -> None:
    plaintext = api_keys.generate().plaintext
    body = list(plaintext)
    for i in range(10, len(body) - 1):
        if body[i] != body[i + 1]:
            body[i], body[i + 1] = body[i + 1], body[i]
            break
    assert not api_keys.well_formed("".join(body))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "veil_live_",
        "veil_test_" + "a" * 38,
        "VEIL_LIVE_" + "a" * 38,
        "veil_live_" + "a" * 37,
        "veil_live_" + "a" * 39,
        "veil_live_" + "-" * 38,
        "veil_live_" + "é" * 38,
        "Bearer something",
    ],
)
def test_garbage_is_not_well_formed(garbage: str) -> None:
    assert not api_keys.well_formed(garbage)


def test_checksum_is_left_padded_base62() -> None:
    assert api_keys.checksum("") == "000000"  # crc32(b"") == 0
    assert len(api_keys.checksum("z" * 32)) == 6


def test_unique_over_many() -> None:
    keys = {api_keys.generate().plaintext for _ in range(5000)}
    assert len(keys) == 5000
    assert len({k[:16] for k in keys}) > 4900  # display prefixes rarely collide
