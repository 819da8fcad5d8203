"""conferences: a meeting's Twilio conferences, several in a slot (an empty one ends, the next caller starts another)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('conferences',
    sa.Column('sid', sa.String(length=34), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['occurrence_id'], ['meeting_occurrences.id'],
                            name=op.f('fk_conferences_occurrence_id_meeting_occurrences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_conferences'))
    )
    with op.batch_alter_table('conferences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conferences_occurrence_id'), ['occurrence_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conferences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conferences_occurrence_id'))
    op.drop_table('conferences')
