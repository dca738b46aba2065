"""vehicles trips bookings geofences outbox

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('booking',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.create_index('ix_booking_vehicle_start', ['vehicle_id', 'start_time'], unique=False)

    op.create_table('geofence',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('shape', sa.JSON(), nullable=False),
    sa.Column('dwell_s', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('geofence_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fence_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('geofence_event', schema=None) as batch_op:
        batch_op.create_index('ix_geofence_event_vehicle_time', ['vehicle_id', 'time'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sink', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('record_type', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('record_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('order_key', sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('delivered_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sink', 'record_type', 'record_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_sink_state_id', ['sink', 'state', 'id'], unique=False)

    op.create_table('trip',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=False),
    sa.Column('start_lat', sa.Float(), nullable=False),
    sa.Column('start_lon', sa.Float(), nullable=False),
    sa.Column('end_lat', sa.Float(), nullable=False),
    sa.Column('end_lon', sa.Float(), nullable=False),
    sa.Column('distance_km', sa.Float(), nullable=False),
    sa.Column('distance_source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('max_speed_kmh', sa.Float(), nullable=True),
    sa.Column('avg_speed_kmh', sa.Float(), nullable=True),
    sa.Column('point_count', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trip', schema=None) as batch_op:
        batch_op.create_index('ix_trip_vehicle_start', ['vehicle_id', 'start_time'], unique=False)

    op.create_table('vehicle',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('plate', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('driver', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id')
    )
    with op.batch_alter_table('fix', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hdop', sa.Float(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('fix', schema=None) as batch_op:
        batch_op.drop_column('hdop')

    op.drop_table('vehicle')
    with op.batch_alter_table('trip', schema=None) as batch_op:
        batch_op.drop_index('ix_trip_vehicle_start')

    op.drop_table('trip')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_sink_state_id')

    op.drop_table('outbox')
    with op.batch_alter_table('geofence_event', schema=None) as batch_op:
        batch_op.drop_index('ix_geofence_event_vehicle_time')

    op.drop_table('geofence_event')
    op.drop_table('geofence')
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.drop_index('ix_booking_vehicle_start')

    op.drop_table('booking')
