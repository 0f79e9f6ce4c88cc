"""builds.image and releases.image: what a release runs on the nomad runtime

An image pinned by digest (``<registry>/<app>@sha256:...``) instead of a slug file; a release
has one or the other, so releases.slug_path becomes nullable.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.Text(), nullable=True))
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.Text(), nullable=True))
        batch_op.alter_column("slug_path", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.alter_column("slug_path", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("image")
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("image")
