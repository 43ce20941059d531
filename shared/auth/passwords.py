"""Password hashing with bcrypt.

The password is first reduced with SHA-256 (base64, 44 bytes) so that long
passphrases are not silently truncated at bcrypt's 72-byte limit.
"""

from __future__ import annotations

import base64
import functools
import hashlib

import bcrypt


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except ValueError:
        return False


@functools.cache
def dummy_hash(rounds: int) -> str:
    """Checked against when the email is unknown, so a login takes as long either
    way and response time does not reveal which emails have accounts: made at the
    cost real hashes are made at (a fixed cost would answer unknown emails faster
    or slower than known ones whenever the setting differs), once per process."""
    return hash_password("veil-timing-equaliser", rounds=rounds)
