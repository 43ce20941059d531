"""The local install's secrets file (data/secrets.env): generated once, 0600, read back."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.platform_secrets import SECRET_NAMES, load_or_create_secrets

NAMES = {"VEIL_JWT_SECRET", "VEIL_SERVICE_TOKEN", "VEIL_SECRETS_KEY", "VEIL_REDIS_PASSWORD"}


def test_the_first_run_generates_every_secret_into_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    values = load_or_create_secrets(path, {})
    assert set(SECRET_NAMES) == set(values) == NAMES
    assert len(set(values.values())) == len(NAMES)
    assert all(len(value) >= 48 for value in values.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "".join(f"{k}={v}\n" for k, v in values.items())


def test_later_runs_read_the_same_secrets_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = load_or_create_secrets(path, {})
    path.chmod(0o400)  # a rewrite would fail
    assert load_or_create_secrets(path, {}) == first


def test_the_environment_wins_and_the_file_keeps_its_own(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    stored = load_or_create_secrets(path, {})
    env = {"VEIL_JWT_SECRET": "from-the-environment", "VEIL_SERVICE_TOKEN": ""}
    values = load_or_create_secrets(path, env)
    assert values["VEIL_JWT_SECRET"] == "from-the-environment"
    assert values["VEIL_SERVICE_TOKEN"] == stored["VEIL_SERVICE_TOKEN"]  # empty: not set
    assert load_or_create_secrets(path, {}) == stored


def test_a_missing_secret_is_added_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("VEIL_JWT_SECRET=kept-jwt\nVEIL_SERVICE_TOKEN=kept-token\n")
    values = load_or_create_secrets(path, {})
    assert values["VEIL_JWT_SECRET"] == "kept-jwt"
    assert values["VEIL_SERVICE_TOKEN"] == "kept-token"
    assert load_or_create_secrets(path, {}) == values  # the new ones were written


def test_the_file_reads_as_dotenv(tmp_path: Path) -> None:
    """Hand edits read as every dotenv reader reads them: comments, quotes, `export`."""
    path = tmp_path / "secrets.env"
    path.write_text(
        "# written by make run\n"
        "VEIL_JWT_SECRET = spaced-jwt\n"
        'VEIL_SERVICE_TOKEN="quoted-token"\n'
        "export VEIL_SECRETS_KEY=exported-key-of-some-length\n"
        "VEIL_REDIS_PASSWORD=redis-password  # a comment\n"
        "VEIL_UNRELATED=ignored\n"
    )
    assert load_or_create_secrets(path, {}) == {
        "VEIL_JWT_SECRET": "spaced-jwt",
        "VEIL_SERVICE_TOKEN": "quoted-token",
        "VEIL_SECRETS_KEY": "exported-key-of-some-length",
        "VEIL_REDIS_PASSWORD": "redis-password",
    }


def test_only_the_environment_passed_in_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("VEIL_JWT_SECRET=from-the-file\n")
    monkeypatch.setenv("VEIL_JWT_SECRET", "from-the-process")
    monkeypatch.setenv("VEIL_SERVICE_TOKEN", "from-the-process")
    values = load_or_create_secrets(path, {})
    assert values["VEIL_JWT_SECRET"] == "from-the-file"
    assert values["VEIL_SERVICE_TOKEN"] != "from-the-process"  # generated into the file
    assert load_or_create_secrets(path, {})["VEIL_SERVICE_TOKEN"] == values["VEIL_SERVICE_TOKEN"]
