"""visitors

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('company', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('host_person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('window_end', sa.BigInteger(), nullable=False),
    sa.Column('doors', sa.JSON(), nullable=False),
    sa.Column('credential_kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('credential_value', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('valid_from', sa.BigInteger(), nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.Column('checked_in_at', sa.BigInteger(), nullable=True),
    sa.Column('checked_out_at', sa.BigInteger(), nullable=True),
    sa.Column('checkout_reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('anonymised_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_host_person_id'), ['host_person_id'], unique=False)
        batch_op.create_index('ix_visit_valid_until', ['valid_until'], unique=False)
        batch_op.create_index('ix_visit_window_end', ['window_end'], unique=False)

    op.create_table('visit_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('host_person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('visit_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_notification_delivered'), ['delivered'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_notification_visit_id'), ['visit_id'], unique=False)

    op.create_table('visitor_blocklist',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('visitor_blocklist')
    with op.batch_alter_table('visit_notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_notification_visit_id'))
        batch_op.drop_index(batch_op.f('ix_visit_notification_delivered'))

    op.drop_table('visit_notification')
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_window_end')
        batch_op.drop_index('ix_visit_valid_until')
        batch_op.drop_index(batch_op.f('ix_visit_host_person_id'))

    op.drop_table('visit')
