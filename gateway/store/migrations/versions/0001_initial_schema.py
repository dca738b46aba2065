"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.LargeBinary(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('door', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('utc_offset_min', sa.Integer(), nullable=False),
    sa.Column('credential_kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('credential_value', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('credential_bits', sa.Integer(), nullable=True),
    sa.Column('person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('visitor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('raw_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stored_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('access_event', schema=None) as batch_op:
        batch_op.create_index('ix_access_door_time', ['door', 'time'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_event_device_id'), ['device_id'], unique=False)

    op.create_table('command_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.LargeBinary(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('command_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('raw_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('command_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_command_result_command_id'), ['command_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_command_result_device_id'), ['device_id'], unique=False)

    op.create_table('dead_letter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dead_letter_reason'), ['reason'], unique=False)

    op.create_table('device',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('protocol', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('last_seen', sa.BigInteger(), nullable=True),
    sa.Column('firmware', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('events_total', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('errors_total', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('credential_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('device_status',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.LargeBinary(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('raw_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stored_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('device_status', schema=None) as batch_op:
        batch_op.create_index('ix_status_device_time', ['device_id', 'time'], unique=False)

    op.create_table('fix',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.LargeBinary(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('vehicle_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('utc_offset_min', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('speed_kmh', sa.Float(), nullable=True),
    sa.Column('heading', sa.Float(), nullable=True),
    sa.Column('alt', sa.Float(), nullable=True),
    sa.Column('sats', sa.Integer(), nullable=True),
    sa.Column('ignition', sa.Boolean(), nullable=True),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('odometer_km', sa.Float(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('raw_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stored_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('fix', schema=None) as batch_op:
        batch_op.create_index('ix_fix_device_time', ['device_id', 'time'], unique=False)

    op.create_table('journal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('transport', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('punch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.LargeBinary(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('utc_offset_min', sa.Integer(), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('verify', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('verify_code', sa.Integer(), nullable=True),
    sa.Column('workcode', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('raw_ref', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stored_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('punch', schema=None) as batch_op:
        batch_op.create_index('ix_punch_device_time', ['device_id', 'time'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('punch', schema=None) as batch_op:
        batch_op.drop_index('ix_punch_device_time')

    op.drop_table('punch')
    op.drop_table('journal')
    with op.batch_alter_table('fix', schema=None) as batch_op:
        batch_op.drop_index('ix_fix_device_time')

    op.drop_table('fix')
    with op.batch_alter_table('device_status', schema=None) as batch_op:
        batch_op.drop_index('ix_status_device_time')

    op.drop_table('device_status')
    op.drop_table('device')
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letter_reason'))
        batch_op.drop_index(batch_op.f('ix_dead_letter_device_id'))

    op.drop_table('dead_letter')
    with op.batch_alter_table('command_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_command_result_device_id'))
        batch_op.drop_index(batch_op.f('ix_command_result_command_id'))

    op.drop_table('command_result')
    with op.batch_alter_table('access_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_event_device_id'))
        batch_op.drop_index('ix_access_door_time')

    op.drop_table('access_event')
