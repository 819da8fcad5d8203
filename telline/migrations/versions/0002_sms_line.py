"""sms line

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 21:14:25.520847

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema. Columns added to existing tables carry server defaults so rows
    written before this migration get the same values new rows get from the models."""

    op.create_table('message_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('twilio_sid', sa.String(length=34), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events')),
    sa.UniqueConstraint('twilio_sid', 'status', name=op.f('uq_message_events_twilio_sid'))
    )
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_events_twilio_sid'), ['twilio_sid'], unique=False)

    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_broadcasts_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['coordinators.id'], name=op.f('fk_broadcasts_requested_by_coordinators'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_broadcasts_idempotency_key'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcasts_group_id'), ['group_id'], unique=False)

    op.create_table('meeting_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('first_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rrule', sa.String(length=255), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('access_code', sa.String(length=12), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_meeting_series_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['line_id'], ['lines.id'], name=op.f('fk_meeting_series_line_id_lines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_series')),
    sa.UniqueConstraint('line_id', 'access_code', name=op.f('uq_meeting_series_line_id'))
    )
    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_series_group_id'), ['group_id'], unique=False)

    op.create_table('inbox_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_inbox_items_group_id_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_inbox_items_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_inbox_items_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_items')),
    sa.UniqueConstraint('message_id', name=op.f('uq_inbox_items_message_id'))
    )
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_items_group_id'), ['group_id'], unique=False)

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_code', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('join_needs_confirmation', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('quiet_start', sa.Time(), nullable=False, server_default='21:00:00'))
        batch_op.add_column(sa.Column('quiet_end', sa.Time(), nullable=False, server_default='08:00:00'))
        batch_op.add_column(sa.Column('crisis_resource', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('coordinator_contact', sa.String(length=200), nullable=False, server_default=''))
        batch_op.create_unique_constraint(batch_op.f('uq_groups_text_code'), ['text_code'])

    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_rate', sa.Double(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('sms_rate_unit', sa.String(length=8), nullable=False, server_default='segments'))

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_status', sa.String(length=12), nullable=False, server_default='ok'))
        batch_op.add_column(sa.Column('sms_status_detail', sa.String(length=120), nullable=False, server_default=''))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=24), nullable=False, server_default='message'))
        batch_op.add_column(sa.Column('broadcast_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('encoding', sa.String(length=8), nullable=False, server_default='GSM-7'))
        batch_op.add_column(sa.Column('segments', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('send_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_broadcast_id'), ['broadcast_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_messages_broadcast_id_broadcasts'), 'broadcasts', ['broadcast_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_broadcast_id_broadcasts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_broadcast_id'))
        batch_op.drop_column('sent_at')
        batch_op.drop_column('send_after')
        batch_op.drop_column('attempts')
        batch_op.drop_column('segments')
        batch_op.drop_column('encoding')
        batch_op.drop_column('broadcast_id')
        batch_op.drop_column('kind')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('sms_status_detail')
        batch_op.drop_column('sms_status')

    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('sms_rate_unit')
        batch_op.drop_column('sms_rate')

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_groups_text_code'), type_='unique')
        batch_op.drop_column('coordinator_contact')
        batch_op.drop_column('crisis_resource')
        batch_op.drop_column('quiet_end')
        batch_op.drop_column('quiet_start')
        batch_op.drop_column('join_needs_confirmation')
        batch_op.drop_column('text_code')

    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_items_group_id'))

    op.drop_table('inbox_items')
    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_series_group_id'))

    op.drop_table('meeting_series')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcasts_group_id'))

    op.drop_table('broadcasts')
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_events_twilio_sid'))

    op.drop_table('message_events')

