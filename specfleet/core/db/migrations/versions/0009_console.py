"""console: deferred proposals (rate limits), automerge opt-in and records, policy-set fleet rules

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("proposal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deferred_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("priority", _JSON, nullable=True))
        batch_op.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_proposal_released_at", ["released_at"], unique=False)
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(sa.Column("automerge", sa.String(length=32), nullable=True))
    op.create_table(
        "policy_set_fleet",
        sa.Column("policy_set_version", sa.Integer(), nullable=False),
        sa.Column("body", _JSON, nullable=False),
        sa.ForeignKeyConstraint(["policy_set_version"], ["policy_set.version"]),
        sa.PrimaryKeyConstraint("policy_set_version"),
    )
    op.create_table(
        "automerge_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("merge_request_id", sa.Integer(), nullable=False),
        sa.Column("proposal_key", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_commit", sa.String(length=64), nullable=True),
        sa.Column("base_commit", sa.String(length=64), nullable=True),
        sa.Column("reasons", _JSON, nullable=False),
        sa.Column("revert_merge_request_id", sa.Integer(), nullable=True),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"]),
        sa.ForeignKeyConstraint(["merge_request_id"], ["merge_request.id"]),
        sa.ForeignKeyConstraint(["revert_merge_request_id"], ["merge_request.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("automerge_record", schema=None) as batch_op:
        batch_op.create_index("ix_automerge_record_product_id", ["product_id"], unique=False)
        batch_op.create_index(
            "ix_automerge_record_merge_request_id", ["merge_request_id"], unique=False
        )
        batch_op.create_index("ix_automerge_record_merged_at", ["merged_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("automerge_record", schema=None) as batch_op:
        batch_op.drop_index("ix_automerge_record_merged_at")
        batch_op.drop_index("ix_automerge_record_merge_request_id")
        batch_op.drop_index("ix_automerge_record_product_id")
    op.drop_table("automerge_record")
    op.drop_table("policy_set_fleet")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_column("automerge")
    with op.batch_alter_table("proposal", schema=None) as batch_op:
        batch_op.drop_index("ix_proposal_released_at")
        batch_op.drop_column("released_at")
        batch_op.drop_column("priority")
        batch_op.drop_column("deferred_reason")
