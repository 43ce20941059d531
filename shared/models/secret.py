from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin


class ApiSecret(IdMixin, TimestampMixin, Base):
    """A named value injected into the API's containers; write-only through the API.

    `ciphertext` is a `shared.crypto` blob sealed for (api_id, name): the
    plaintext is never stored, and only the executor decrypts it, at container start.
    """

    __tablename__ = "api_secrets"
    # The unique index leads with api_id, so it also serves "the secrets of this API".
    __table_args__ = (UniqueConstraint("api_id", "name"),)

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
