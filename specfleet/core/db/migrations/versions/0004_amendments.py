"""amendments: owners' requests to change a product's spec

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "amendment_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requirement", sa.String(length=4000), nullable=False),
        sa.Column("why", sa.String(length=4000), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        sa.Column("amendment_id", sa.String(length=32), nullable=True),
        sa.Column("conflict", _JSON, nullable=True),
        sa.Column("outcome_detail", sa.String(length=4000), nullable=True),
        sa.Column("merge_request_url", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"]),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("amendment_request", schema=None) as batch_op:
        batch_op.create_index("ix_amendment_request_product_id", ["product_id"], unique=False)
        batch_op.create_index("ix_amendment_request_evaluation_id", ["evaluation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("amendment_request", schema=None) as batch_op:
        batch_op.drop_index("ix_amendment_request_evaluation_id")
        batch_op.drop_index("ix_amendment_request_product_id")
    op.drop_table("amendment_request")
