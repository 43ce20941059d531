"""Password hashes, and the stand-in hash an unknown email is checked against."""

from __future__ import annotations

from shared.auth.passwords import dummy_hash, hash_password, verify_password


def test_the_stand_in_hash_costs_what_real_hashes_cost() -> None:
    # bcrypt writes its cost into the hash: "$2b$<rounds>$...". A stand-in at another
    # cost would answer unknown emails in another time than known ones.
    for rounds in (4, 5):
        real, stand_in = hash_password("x", rounds), dummy_hash(rounds)
        assert real.split("$")[2] == stand_in.split("$")[2] == f"{rounds:02d}"
        assert not verify_password("anything", stand_in)
    assert dummy_hash(4) is dummy_hash(4)  # made once per process


def test_long_passphrases_are_not_truncated() -> None:
    long = "a" * 100
    stored = hash_password(long, 4)
    assert verify_password(long, stored)
    assert not verify_password("a" * 99 + "b", stored)
    assert not verify_password(long, "not a bcrypt hash")
