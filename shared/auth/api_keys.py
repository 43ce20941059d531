"""API keys for consumers: `veil_live_<32 random base62><6 base62 CRC32 checksum>`.

32 characters from a 62-letter alphabet carry log2(62**32) ≈ 190 bits from
`secrets`. The checksum (GitHub-token style) is not a secret: it lets the data
plane refuse a mistyped or made-up key without touching its cache or the
database, and lets secret scanners recognise real keys. Only the SHA-256 of a
key is stored, next to a short display prefix; the plaintext is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from dataclasses import dataclass

KEY_PREFIX = "veil_live_"
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
KEY_LENGTH = len(KEY_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
DISPLAY_LENGTH = 16
_ALPHABET_SET = frozenset(ALPHABET)


@dataclass(frozen=True)
class IssuedKey:
    plaintext: str  # give to the consumer once, never store
    key_hash: str
    prefix: str

    def __repr__(self) -> str:  # keep the plaintext out of logs and tracebacks
        return f"IssuedKey(prefix={self.prefix!r})"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def hash_key(plaintext: str) -> str:
    """What the database stores and the data plane looks up: SHA-256, hex."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def display_prefix(plaintext: str) -> str:
    """Enough to tell keys apart in a list, far too little to use."""
    return plaintext[:DISPLAY_LENGTH] + "…"


def generate() -> IssuedKey:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    plaintext = KEY_PREFIX + random_part + checksum(random_part)
    return IssuedKey(plaintext, hash_key(plaintext), display_prefix(plaintext))


def well_formed(plaintext: str) -> bool:
    """Prefix, length, alphabet and checksum: no I/O, so garbage is refused cheaply."""
    if len(plaintext) != KEY_LENGTH or not plaintext.startswith(KEY_PREFIX):
        return False
    body = plaintext[len(KEY_PREFIX) :]
    if not _ALPHABET_SET.issuperset(body):
        return False
    return checksum(body[:RANDOM_LENGTH]) == body[RANDOM_LENGTH:]
