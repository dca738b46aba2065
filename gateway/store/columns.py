"""Column helpers shared by the table modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

if TYPE_CHECKING:
    from sqlalchemy import Table as CoreTable


class Table(SQLModel):
    """The base of every table class. SQLModel sets `__table__` at class creation without declaring it;
    declared here (for the type checker only) so Core statements can use it."""

    if TYPE_CHECKING:
        __table__: ClassVar[CoreTable]


def epoch_ms(**kw: Any) -> Any:
    """A UTC epoch-milliseconds BIGINT column, NOT NULL unless ``nullable=True``."""
    return Field(sa_column=Column(BigInteger, nullable=kw.pop("nullable", False), **kw))
