"""code lockouts: the lock after too many wrong codes, checked with the seat

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 02:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('code_lockouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('caller_key', sa.String(length=20), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['lines.id'], name=op.f('fk_code_lockouts_line_id_lines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_lockouts'))
    )
    with op.batch_alter_table('code_lockouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_code_lockouts_line_id'), ['line_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('code_lockouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_lockouts_line_id'))
    op.drop_table('code_lockouts')
