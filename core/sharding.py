"""Which executor shard copies for which follower account (a scaled-out deployment).

A follower account (its stored credential) belongs to exactly one of N shards, by a stable hash
of its id: every process computes the same answer, and all of one account's orders stay in one
process (its per-account concurrency and the per-(follow, symbol) order hold there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.errors import ConfigError

#: more shards than this is a typo, not a deployment
MAX_SHARDS = 1024


def shard_of(credential_id: str, count: int) -> int:
    """The shard (0 .. count - 1) of one follower account."""
    digest = hashlib.sha256(credential_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"--shard: the shard count must be between 1 and {MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"--shard: the index must be between 0 and {self.count - 1}, not {self.index}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, credential_id: str) -> bool:
        return shard_of(credential_id, self.count) == self.index

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``: shard I (from 0) of N."""
        index, slash, count = text.strip().partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise ConfigError(f"--shard: expected I/N (e.g. 0/2: the first of two shards), not {text!r}")
        return cls(int(index), int(count))
