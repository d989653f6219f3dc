"""The Redis keys of one deployment, all under one prefix (several deployments, or tests, can
share a Redis server)."""

from __future__ import annotations

from dataclasses import dataclass

from core.sharding import Shard

#: a fill's "published" marker outlives any listener restart by far (it is planned right after)
PUBLISHED_MARKER_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def fills(self) -> str:
        """The stream of journaled fills (and the changes of masters' orders): one entry per fill or change."""
        return f"{self.prefix}:fills"

    @property
    def notifications(self) -> str:
        """The stream of notifications the executors produce and the bot role delivers."""
        return f"{self.prefix}:notifications"

    @property
    def settings(self) -> str:
        """The pub/sub channel of settings changes (follows' caches, positions reset)."""
        return f"{self.prefix}:settings"

    @property
    def leases(self) -> str:
        """Hash: shard field -> "holder|expiry ms" of the replica allowed to send for that shard."""
        return f"{self.prefix}:leases"

    @property
    def epochs(self) -> str:
        """Hash: shard field -> how many times that shard's lease changed hands."""
        return f"{self.prefix}:epochs"

    @property
    def adopting(self) -> str:
        """Short lock while a shard count's consumer groups are created from the previous count's."""
        return f"{self.prefix}:adopting"

    def published(self, fill_id: int) -> str:
        return f"{self.prefix}:published:{fill_id}"

    def all_keys_pattern(self) -> str:
        return f"{self.prefix}:*"


def group_name(shard: Shard) -> str:
    """One consumer group per shard of one shard count: its replicas are the group's consumers."""
    return f"shard-{shard.index}-of-{shard.count}"


def lease_field(shard: Shard) -> str:
    return f"{shard.count}:{shard.index}"


def is_shard_group(name: str) -> bool:
    return name.startswith("shard-")
