"""finding identity: compliance rows carry the stable identities of their findings

A finding is identified by what it is about (rule, package, advisory; for code: rule, file and
a normalised snippet), never by its line (see ``specfleet.policies.findings.Finding.identity``). Rows
written before this revision kept only a count; their identities cannot be recovered from it,
so they stay NULL ("not recorded"), which readers treat as unknown rather than as none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("compliance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finding_ids", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compliance", schema=None) as batch_op:
        batch_op.drop_column("finding_ids")
