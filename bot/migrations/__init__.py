"""Alembic migrations, shipped inside the package so an installed press-digest can migrate."""
