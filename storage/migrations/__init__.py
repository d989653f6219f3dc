"""Alembic environment and the versioned schema migrations (a package so that it installs with ``storage``)."""
