"""phone meetings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 21:33:09.674206

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema. Columns added to existing tables carry server defaults for old rows."""

    op.create_table('meeting_occurrences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('conference_name', sa.String(length=40), nullable=False),
    sa.Column('conference_sid', sa.String(length=34), nullable=True),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['series_id'], ['meeting_series.id'], name=op.f('fk_meeting_occurrences_series_id_meeting_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_occurrences')),
    sa.UniqueConstraint('conference_name', name=op.f('uq_meeting_occurrences_conference_name')),
    sa.UniqueConstraint('conference_sid', name=op.f('uq_meeting_occurrences_conference_sid')),
    sa.UniqueConstraint('series_id', 'starts_at', name=op.f('uq_meeting_occurrences_series_id'))
    )
    with op.batch_alter_table('meeting_occurrences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_occurrences_series_id'), ['series_id'], unique=False)

    op.create_table('announcements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['occurrence_id'], ['meeting_occurrences.id'], name=op.f('fk_announcements_occurrence_id_meeting_occurrences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('occurrence_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('role', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('name_recording_url', sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_occurrence_id'), ['occurrence_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_calls_occurrence_id_meeting_occurrences'), 'meeting_occurrences', ['occurrence_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('conference_participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('occurrence_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_conference_participants_occurrence_id'), ['occurrence_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_conference_participants_occurrence_id_meeting_occurrences'), 'meeting_occurrences', ['occurrence_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host_pin', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('join_early_minutes', sa.Integer(), nullable=False, server_default='10'))
        batch_op.add_column(sa.Column('max_participants', sa.Integer(), nullable=False, server_default='40'))
        batch_op.add_column(sa.Column('caller_id_joins', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('host_leaving_ends', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('announce_entries', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('record_names', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('record', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('wait_url', sa.String(length=500), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.drop_column('wait_url')
        batch_op.drop_column('record')
        batch_op.drop_column('record_names')
        batch_op.drop_column('announce_entries')
        batch_op.drop_column('host_leaving_ends')
        batch_op.drop_column('caller_id_joins')
        batch_op.drop_column('max_participants')
        batch_op.drop_column('join_early_minutes')
        batch_op.drop_column('host_pin')

    with op.batch_alter_table('conference_participants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_conference_participants_occurrence_id_meeting_occurrences'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_conference_participants_occurrence_id'))
        batch_op.drop_column('occurrence_id')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_calls_occurrence_id_meeting_occurrences'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_calls_occurrence_id'))
        batch_op.drop_column('name_recording_url')
        batch_op.drop_column('role')
        batch_op.drop_column('occurrence_id')
        batch_op.drop_column('code_attempts')

    op.drop_table('announcements')
    with op.batch_alter_table('meeting_occurrences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_occurrences_series_id'))

    op.drop_table('meeting_occurrences')

