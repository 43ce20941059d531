"""`python -m gateway.admin.create_admin EMAIL`: create an admin account, or promote one.

The password comes from VEIL_ADMIN_PASSWORD or is asked for on the terminal;
sign-up never hands out the admin role.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.auth.service import normalise_email
from shared.auth.passwords import hash_password
from shared.db import create_engine, create_sessionmaker
from shared.models import User
from shared.platform_secrets import load_or_create_secrets
from shared.settings import GatewaySettings


async def ensure_admin(settings: GatewaySettings, email: str, password: str) -> str:
    engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
    try:
        async with create_sessionmaker(engine)() as session:
            email = normalise_email(email)
            user = await session.scalar(select(User).where(User.email == email))
            password_hash = hash_password(password, settings.bcrypt_rounds)
            if user is None:
                user = User(email=email, password_hash=password_hash, role="admin")
                session.add(user)
            else:
                user.role = "admin"
                user.password_hash = password_hash
            await session.commit()
            return user.id
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or "@" not in argv[0]:
        print("usage: python -m gateway.admin.create_admin EMAIL", file=sys.stderr)
        return 2
    password = os.environ.get("VEIL_ADMIN_PASSWORD") or getpass.getpass("admin password: ")
    if len(password) < 12:
        print("an admin password needs at least 12 characters", file=sys.stderr)
        return 2
    # Same embedded defaults as `make run`: secrets from data/secrets.env unless set.
    data_dir = Path(os.environ.get("VEIL_DATA_DIR", "data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(load_or_create_secrets(data_dir / "secrets.env", dict(os.environ)))
    user_id = asyncio.run(ensure_admin(GatewaySettings(), argv[0], password))
    print(f"admin {argv[0]} ready (id {user_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
