"""Scaling out over Redis Streams: a listener role publishes each journaled fill once, executor
shards copy it to their follower accounts, a bot role serves Telegram. PostgreSQL stays the
system of record (the journal); Redis only carries work and signals between the processes.

The Redis client is imported only in this package (import-linter contract in pyproject.toml).
"""
