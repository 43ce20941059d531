"""Authenticated encryption of small values (per-API secrets) with the platform key.

AES-256-GCM with a fresh random 96-bit nonce per value. The associated data
binds a ciphertext to the API id and the name it was stored under, so a blob
copied to another API or renamed in the database fails to decrypt instead of
leaking into the wrong container.

A stored blob is text: `v1.<key id>.<base64url(nonce || ciphertext || tag)>`.
`v1` names this format; the key id is a short fingerprint of the key (derived
with HKDF, it reveals nothing of the key) so that a later rotation can tell
which key sealed a value and re-encrypt the old ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.errors import VeilError

FORMAT = "v1"
NONCE_BYTES = 12
TAG_BYTES = 16


class SecretDecryptionError(VeilError):
    """A stored secret does not decrypt: tampered, moved, or sealed with another key.

    Messages name the secret and the reason, never a value.
    """

    status = 500
    code = "secret_undecryptable"


def _derive(key: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key.encode())


def _associated_data(api_id: str, name: str) -> bytes:
    # Length-prefixed so that no two (api_id, name) pairs share an encoding.
    parts = [FORMAT.encode(), api_id.encode(), name.encode()]
    return b"veil-secret" + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class SecretBox:
    """Seals and opens values for one platform key (`VEIL_SECRETS_KEY`)."""

    def __init__(self, key: str) -> None:
        if len(key) < 16:
            raise ValueError("the secrets key must be at least 16 characters")
        self._aead = AESGCM(_derive(key, b"veil secrets v1 aes-256-gcm", 32))
        self.key_id = _derive(key, b"veil secrets v1 key id", 4).hex()

    def encrypt(self, api_id: str, name: str, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), _associated_data(api_id, name))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{FORMAT}.{self.key_id}.{payload}"

    def decrypt(self, api_id: str, name: str, blob: str) -> str:
        fmt, _, rest = blob.partition(".")
        key_id, _, payload = rest.partition(".")
        if fmt != FORMAT or not payload:
            raise SecretDecryptionError(
                f"The stored secret '{name}' is not in a format this platform reads."
            )
        if key_id != self.key_id:
            raise SecretDecryptionError(
                f"The secret '{name}' was encrypted with key id {key_id}; this platform's"
                f" VEIL_SECRETS_KEY has id {self.key_id}."
            )
        try:
            raw = base64.urlsafe_b64decode(payload.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            raise SecretDecryptionError(f"The stored secret '{name}' is corrupt.") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretDecryptionError(f"The stored secret '{name}' is corrupt.")
        try:
            plain = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(api_id, name)
            )
        except InvalidTag:
            raise SecretDecryptionError(
                f"The secret '{name}' does not authenticate: altered, or stored for another"
                " API or name."
            ) from None
        return plain.decode()


def gateway_secret(key: str, api_id: str) -> str:
    """The per-API value the data plane sends as `X-Veil-Gateway-Secret`.

    Derived, not stored: HMAC-SHA256 of the API id under a key derived from the
    platform key, so each API's value reveals nothing about the key or about
    another API's value. The app gets it as VEIL_GATEWAY_SECRET and can refuse
    calls that did not come through the gateway.
    """
    mac = hmac.new(_derive(key, b"veil gateway secret", 32), api_id.encode(), hashlib.sha256)
    return mac.hexdigest()[:40]
