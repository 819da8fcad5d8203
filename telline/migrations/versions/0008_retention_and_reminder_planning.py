"""the retention purge's index (old texts that still hold a body); how far each series' reminders are planned

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_messages_created_at_with_body', 'messages', ['created_at'], unique=False,
                    postgresql_where=sa.text("body <> ''"), sqlite_where=sa.text("body <> ''"))
    with op.batch_alter_table('meeting_series') as batch_op:
        batch_op.add_column(sa.Column('reminders_planned_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('meeting_series') as batch_op:
        batch_op.drop_column('reminders_planned_until')
    op.drop_index('ix_messages_created_at_with_body', table_name='messages',
                  postgresql_where=sa.text("body <> ''"), sqlite_where=sa.text("body <> ''"))
