"""custom domains, ps:stop

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("app_id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("hostname"),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domains_app_id"), ["app_id"], unique=False)

    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stopped", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("stopped")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domains_app_id"))
    op.drop_table("domains")
