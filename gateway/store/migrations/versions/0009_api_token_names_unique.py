"""api token names unique

Revision ID: 0009
Revises: 0008

The audit log names a token "token:<name>", so two tokens may not share a name.
Names already shared are renamed "<name>~<id>" (oldest keeps its name) first.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    tokens = sa.table('api_token', sa.column('id', sa.String), sa.column('name', sa.String),
                      sa.column('created_at', sa.BigInteger))
    conn = op.get_bind()
    rows = conn.execute(sa.select(tokens.c.id, tokens.c.name).order_by(tokens.c.created_at, tokens.c.id)).all()
    taken = {name for _, name in rows}
    seen: set[str] = set()
    for token_id, name in rows:
        if name not in seen:
            seen.add(name)
            continue
        new = f"{name[:100 - len(token_id) - 1]}~{token_id}"
        while new in taken:
            new = new[:-1] + "_"
        taken.add(new)
        conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(name=new))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index('ux_api_token_name', ['name'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index('ux_api_token_name')
