"""Column helpers shared by the table modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field


def epoch_ms(**kw: Any) -> Any:
    """A UTC epoch-milliseconds BIGINT column, NOT NULL unless ``nullable=True``."""
    return Field(sa_column=Column(BigInteger, nullable=kw.pop("nullable", False), **kw))
