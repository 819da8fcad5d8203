"""when an imported consent was given (consent_events.given_on)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('consent_events') as batch_op:
        batch_op.add_column(sa.Column('given_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consent_events') as batch_op:
        batch_op.drop_column('given_on')
