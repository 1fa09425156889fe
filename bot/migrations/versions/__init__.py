"""Alembic revisions (one module per migration)."""
