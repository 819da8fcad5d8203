"""accounts (users, their groups, API tokens, the audit log), reminders, calendar feeds, a zone per series, moved meetings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('display_name', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('target_type', sa.String(length=32), nullable=True),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_audit_events_group_id_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_audit_events_group_id_id', ['group_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_user_id'), ['user_id'], unique=False)

    op.create_table('calendar_feeds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_calendar_feeds_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_feeds')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_calendar_feeds_token_hash'))
    )
    with op.batch_alter_table('calendar_feeds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_feeds_group_id'), ['group_id'], unique=False)

    op.create_table('user_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_user_groups_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_groups_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_groups')),
    sa.UniqueConstraint('user_id', 'group_id', name=op.f('uq_user_groups_user_id'))
    )
    with op.batch_alter_table('user_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_groups_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_groups_user_id'), ['user_id'], unique=False)

    op.create_table('reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('original_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('offset_minutes', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['meeting_series.id'], name=op.f('fk_reminders_series_id_meeting_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminders')),
    sa.UniqueConstraint('series_id', 'original_start', 'offset_minutes', name=op.f('uq_reminders_series_id'))
    )
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index('ix_reminders_state_due_at', ['state', 'due_at'], unique=False)

    # The coordinators tables were never written to (no command made one): users replace them.
    op.execute("UPDATE broadcasts SET requested_by = NULL")
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_broadcasts_requested_by_coordinators'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_broadcasts_requested_by_users'), 'users', ['requested_by'], ['id'], ondelete='SET NULL')
    op.drop_table('coordinator_roles')
    op.drop_table('coordinators')

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_retention_days', sa.Integer(), nullable=False, server_default='180'))
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.alter_column('message_retention_days', server_default=None)

    # A meeting's place in its rule (RECURRENCE-ID): where it is, for every meeting so far (none was moved).
    with op.batch_alter_table('meeting_occurrences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_start', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE meeting_occurrences SET original_start = starts_at")
    with op.batch_alter_table('meeting_occurrences', schema=None) as batch_op:
        batch_op.alter_column('original_start', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_meeting_occurrences_series_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_meeting_occurrences_series_id'), ['series_id', 'original_start'])
        batch_op.create_index('ix_meeting_occurrences_series_id_starts_at', ['series_id', 'starts_at'], unique=False)

    # A series' zone was its group's: copied, then each series has its own.
    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=False, server_default='UTC'))
        batch_op.add_column(sa.Column('host_user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reminder_offsets', sa.JSON(), nullable=False, server_default='[1440, 15]'))
    op.execute("UPDATE meeting_series SET timezone = (SELECT groups.timezone FROM groups WHERE groups.id = meeting_series.group_id)")
    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.alter_column('timezone', server_default=None)
        batch_op.alter_column('reminder_offsets', server_default=None)
        batch_op.create_foreign_key(batch_op.f('fk_meeting_series_host_user_id_users'), 'users', ['host_user_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_meeting_series_host_user_id_users'), type_='foreignkey')
        batch_op.drop_column('reminder_offsets')
        batch_op.drop_column('host_user_id')
        batch_op.drop_column('timezone')

    with op.batch_alter_table('meeting_occurrences', schema=None) as batch_op:
        batch_op.drop_index('ix_meeting_occurrences_series_id_starts_at')
        batch_op.drop_constraint(batch_op.f('uq_meeting_occurrences_series_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_meeting_occurrences_series_id'), ['series_id', 'starts_at'])
        batch_op.drop_column('original_start')

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('message_retention_days')

    op.create_table('coordinators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('display_name', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coordinators')),
    sa.UniqueConstraint('email', name=op.f('uq_coordinators_email'))
    )
    op.create_table('coordinator_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coordinator_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['coordinator_id'], ['coordinators.id'], name=op.f('fk_coordinator_roles_coordinator_id_coordinators'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_coordinator_roles_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coordinator_roles')),
    sa.UniqueConstraint('coordinator_id', 'group_id', 'role', name=op.f('uq_coordinator_roles_coordinator_id'))
    )
    op.execute("UPDATE broadcasts SET requested_by = NULL")
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_broadcasts_requested_by_users'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_broadcasts_requested_by_coordinators'), 'coordinators', ['requested_by'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_state_due_at')

    op.drop_table('reminders')
    with op.batch_alter_table('user_groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_groups_user_id'))
        batch_op.drop_index(batch_op.f('ix_user_groups_group_id'))

    op.drop_table('user_groups')
    with op.batch_alter_table('calendar_feeds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_feeds_group_id'))

    op.drop_table('calendar_feeds')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_user_id'))
        batch_op.drop_index('ix_audit_events_group_id_id')
        batch_op.drop_index(batch_op.f('ix_audit_events_created_at'))

    op.drop_table('audit_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
