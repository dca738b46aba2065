"""access events: credential format, facility, number

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credential_format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('facility', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('number', sa.BigInteger(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('access_event', schema=None) as batch_op:
        batch_op.drop_column('number')
        batch_op.drop_column('facility')
        batch_op.drop_column('credential_format')

