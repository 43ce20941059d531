"""shared.crypto: values round-trip, and anything altered, moved or re-keyed is refused."""

from __future__ import annotations

import base64

import pytest

from shared.crypto import SecretBox, SecretDecryptionError
from shared.errors import VeilError

KEY = "a platform key that is long enough"
API = "6f1c2a4e-0000-4000-8000-000000000001"


def test_round_trip_and_fresh_nonce_per_value() -> None:
    box = SecretBox(KEY)
    first = box.encrypt(API, "DB_PASSWORD", "hunter2 ünïcode")
    second = box.encrypt(API, "DB_PASSWORD", "hunter2 ünïcode")
    assert first != second
    assert "hunter2" not in first
    assert first.startswith(f"v1.{box.key_id}.")
    assert box.decrypt(API, "DB_PASSWORD", first) == "hunter2 ünïcode"
    assert box.decrypt(API, "DB_PASSWORD", second) == "hunter2 ünïcode"
    assert SecretBox(KEY).decrypt(API, "EMPTY", box.encrypt(API, "EMPTY", "")) == ""


def _flip_bit(blob: str, index: int) -> str:
    prefix, payload = blob.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[index] ^= 1
    return f"{prefix}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize("index", [0, 12, -1])  # nonce, ciphertext, tag
def test_tampered_blob_is_refused(index: int) -> None:
    box = SecretBox(KEY)
    blob = box.encrypt(API, "TOKEN", "s3cret-value")
    with pytest.raises(SecretDecryptionError) as caught:
        box.decrypt(API, "TOKEN", _flip_bit(blob, index))
    assert "s3cret-value" not in caught.value.message
    assert isinstance(caught.value, VeilError)


@pytest.mark.parametrize(
    "garbage", ["", "plain text", "v2.abcd.AAAA", "v1.{kid}.", "v1.{kid}.!!!!", "v1.{kid}.AAAA"]
)
def test_malformed_blob_is_refused(garbage: str) -> None:
    box = SecretBox(KEY)
    with pytest.raises(SecretDecryptionError):
        box.decrypt(API, "TOKEN", garbage.format(kid=box.key_id))


@pytest.mark.parametrize(
    ("api_id", "name"),
    [("6f1c2a4e-0000-4000-8000-000000000002", "TOKEN"), (API, "OTHER"), (API, "token")],
)
def test_blob_moved_to_another_api_or_name_is_refused(api_id: str, name: str) -> None:
    box = SecretBox(KEY)
    blob = box.encrypt(API, "TOKEN", "s3cret-value")
    with pytest.raises(SecretDecryptionError, match="does not authenticate"):
        box.decrypt(api_id, name, blob)


def test_wrong_key_is_refused_and_says_which_key() -> None:
    blob = SecretBox(KEY).encrypt(API, "TOKEN", "s3cret-value")
    other = SecretBox("another platform key, also long")
    assert other.key_id != SecretBox(KEY).key_id
    with pytest.raises(SecretDecryptionError, match="key id") as caught:
        other.decrypt(API, "TOKEN", blob)
    assert "s3cret-value" not in caught.value.message
    assert KEY not in caught.value.message
    # Even with the key id forged to match, the other key cannot open it.
    forged = blob.replace(SecretBox(KEY).key_id, other.key_id, 1)
    with pytest.raises(SecretDecryptionError, match="does not authenticate"):
        other.decrypt(API, "TOKEN", forged)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        SecretBox("short")
