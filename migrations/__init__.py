"""Alembic migrations of tos-monitor (one chain for SQLite and PostgreSQL)."""
