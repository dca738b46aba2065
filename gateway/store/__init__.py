"""Durable storage: SQLModel tables, Alembic migrations, the batched writer."""
