from __future__ import annotations

import time

import httpx
import jwt
import pytest

from shared.auth.tokens import AUDIENCE, ISSUER
from shared.settings import GatewaySettings
from tests.integration.conftest import assert_error, signup


async def test_signup_login_me(gateway: httpx.AsyncClient) -> None:
    headers = await signup(gateway, email="Ada@Example.com")
    me = await gateway.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    assert me.json()["role"] == "developer"

    login = await gateway.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )
    assert login.status_code == 200
    assert set(login.json()) >= {"access_token", "refresh_token", "token_type"}
    assert login.json()["token_type"] == "bearer"


async def test_duplicate_email_is_409(gateway: httpx.AsyncClient) -> None:
    await signup(gateway, email="dup@example.com")
    again = await gateway.post(
        "/api/v1/auth/signup",
        json={"email": "DUP@example.com", "password": "another one", "role": "consumer"},
    )
    assert_error(again, 409, "email_taken")


async def test_wrong_password_and_unknown_email_look_the_same(gateway: httpx.AsyncClient) -> None:
    await signup(gateway, email="x@example.com")
    wrong = await gateway.post(
        "/api/v1/auth/login", json={"email": "x@example.com", "password": "wrong password"}
    )
    unknown = await gateway.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert (
        assert_error(wrong, 401, "invalid_credentials")["message"]
        == (assert_error(unknown, 401, "invalid_credentials")["message"])
    )


async def test_signup_refuses_admin_role_and_short_password(gateway: httpx.AsyncClient) -> None:
    admin = await gateway.post(
        "/api/v1/auth/signup",
        json={"email": "a@example.com", "password": "long enough", "role": "admin"},
    )
    assert_error(admin, 422, "validation_error")
    short = await gateway.post(
        "/api/v1/auth/signup", json={"email": "b@example.com", "password": "short"}
    )
    assert_error(short, 422, "validation_error")


async def test_malformed_json_is_400(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/auth/signup", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


async def test_refresh_rotates_and_reuse_revokes_the_family(gateway: httpx.AsyncClient) -> None:
    first = await gateway.post(
        "/api/v1/auth/signup", json={"email": "r@example.com", "password": "correct horse"}
    )
    token1 = first.json()["refresh_token"]
    second = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": token1})
    assert second.status_code == 200
    token2 = second.json()["refresh_token"]
    assert token2 != token1

    reused = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": token1})
    assert_error(reused, 401, "refresh_token_reused")
    # The thief's reuse ended the whole login: the newer token is dead too.
    after = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": token2})
    assert_error(after, 401, "refresh_token_reused")

    garbage = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": "veil_rt_nope"})
    assert_error(garbage, 401, "invalid_refresh_token")


def _forge(secret: str, algorithm: str = "HS256", **claims: object) -> str:
    now = int(time.time())
    payload = {
        "sub": "someone",
        "role": "admin",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "typ": "access",
    }
    payload.update(claims)
    # alg "none" takes an empty key (None is refused by its type once cryptography is in).
    return jwt.encode(payload, secret if algorithm != "none" else "", algorithm=algorithm)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("alg_none", "invalid_token"),
        ("wrong_key", "invalid_token"),
        ("expired", "token_expired"),
        ("garbage", "invalid_token"),
        ("no_bearer", "unauthorized"),
    ],
)
async def test_bad_tokens_are_401(
    module_gateway: httpx.AsyncClient,
    module_gateway_settings: GatewaySettings,
    kind: str,
    code: str,
) -> None:
    gateway = module_gateway  # each refused: nothing stored that the next case could see
    secret = module_gateway_settings.jwt_secret.get_secret_value()
    tokens = {
        "alg_none": "Bearer " + _forge(secret, algorithm="none"),
        "wrong_key": "Bearer " + _forge("not-the-platform-key-but-long-enough-for-hs256"),
        "expired": "Bearer " + _forge(secret, exp=int(time.time()) - 10),
        "garbage": "Bearer abc.def.ghi",
        "no_bearer": "Basic dXNlcjpwYXNz",
    }
    response = await gateway.get("/api/v1/auth/me", headers={"Authorization": tokens[kind]})
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"
