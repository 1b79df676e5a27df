"""Alembic revisions: the only way InferWatch's schema changes."""
