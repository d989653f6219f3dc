"""Helpers shared by the benchmarks: percentiles, RSS, a throw-away app, bulk-seeded followers."""

from __future__ import annotations

import contextlib
import gc
import resource
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import col

from copytrade.config import Mode, Settings
from core.copying.config import EngineConfig
from core.vault import generate_key, key_fingerprint
from core.venues.paper.venue import PaperExchange
from storage.models import Credential, Follow, Master, User


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50 / p99 / mean / min / max of ``values`` (p99 of a handful of runs is close to the max)."""
    return {
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "mean": round(statistics.fmean(values), digits) if values else float("nan"),
        "min": round(min(values), digits) if values else float("nan"),
        "max": round(max(values), digits) if values else float("nan"),
        "n": len(values),
    }


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settled_rss_mb() -> float:
    gc.collect()
    return rss_mb()


@contextlib.asynccontextmanager
async def temp_app(
    *, mode: Mode = Mode.PAPER, venue_urls: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[Any]:
    """``build_app`` on a fresh SQLite file in a temporary directory, closed afterwards."""
    from copytrade.app import build_app, tune_garbage_collector

    with tempfile.TemporaryDirectory(prefix="copytrade-bench-") as tmp:
        config = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            secret_key=generate_key(),
            mode=mode,
            data_dir=Path(tmp),
            venue_urls=venue_urls or {},
            **settings,
        )
        # the paper world in memory: the benchmarks measure the copier, not the simulated venue's saves
        # fills are built just before on_fill; a generous age keeps a slow machine from skipping them
        engine_config = EngineConfig(
            max_fill_age=timedelta(seconds=300),
            max_concurrent_orders=config.max_concurrent_orders,
            per_account_concurrency=config.per_account_concurrency,
        )
        app = await build_app(config, paper=PaperExchange(), engine_config=engine_config)
        tune_garbage_collector()  # as ``copytrade run`` does
        try:
            yield app
        finally:
            await app.close()


async def add_master(
    app: Any, venue: str, api_secrets: dict[str, str], environment: str, name: str = "Bench Master"
) -> tuple[int, str]:
    """A master row with its sealed credential, written directly (no venue validation)."""
    [(master_id, credential_id)] = await seed_accounts(app, venue, [api_secrets], environment, master_name=name)
    return master_id, credential_id


async def seed_accounts(
    app: Any,
    venue: str,
    account_secrets: Iterable[dict[str, str]],
    environment: str,
    *,
    master_name: str | None = None,
    master_id: int | None = None,
    follow_settings: dict[str, Any] | None = None,
) -> list[tuple[int, str]]:
    """Users, sealed credentials and (with ``master_id``) active follows in a few bulk INSERTs.

    Going through ``Services.connect_account`` would validate each key with the venue: right for
    users, needlessly slow for 10,000 benchmark accounts. The rows are the same ones it writes.
    Returns ``(master_id or follow_id, credential_id)`` per account.
    """
    vault = app.vault
    account_secrets = list(account_secrets)
    out: list[tuple[int, str]] = []
    async with app.db.session() as session:
        prefix = secrets.token_hex(4)
        users = [{"display_name": f"bench {prefix} {i}", "telegram_id": None} for i in range(len(account_secrets))]
        first = (await session.execute(select(col(User.id)).order_by(col(User.id).desc()).limit(1))).scalar() or 0
        await session.execute(insert(User), users)
        user_ids = list(
            (await session.execute(select(col(User.id)).where(col(User.id) > first).order_by(col(User.id)))).scalars()
        )
        credentials = []
        for user_id, raw in zip(user_ids, account_secrets, strict=True):
            credential_id = secrets.token_hex(16)
            credentials.append(
                {
                    "id": credential_id,
                    "user_id": user_id,
                    "venue": venue,
                    "label": "main",
                    "environment": environment,
                    "ciphertext": vault.encrypt(raw, owner_id=user_id, credential_id=credential_id),
                    "key_fingerprint": key_fingerprint(raw["api_key"]),
                }
            )
        await session.execute(insert(Credential), credentials)
        if master_name is not None:
            for credential in credentials:
                master = Master(name=master_name, venue=venue, credential_id=credential["id"])
                session.add(master)
                await session.flush()
                assert master.id is not None
                out.append((master.id, credential["id"]))
            return out
        assert master_id is not None
        settings = {"sizing_value": Decimal(1), **(follow_settings or {})}
        follows = [
            Follow(user_id=user_id, master_id=master_id, credential_id=credential["id"], **settings).model_dump(
                exclude={"id"}
            )
            for user_id, credential in zip(user_ids, credentials, strict=True)
        ]
        first_follow = (
            await session.execute(select(col(Follow.id)).order_by(col(Follow.id).desc()).limit(1))
        ).scalar() or 0
        await session.execute(insert(Follow), follows)
        follow_ids = list(
            (
                await session.execute(
                    select(col(Follow.id)).where(col(Follow.id) > first_follow).order_by(col(Follow.id))
                )
            ).scalars()
        )
    app.engine.invalidate_follows(master_id)
    return list(zip(follow_ids, [c["id"] for c in credentials], strict=True))


class PlaceOrderClock:
    """While installed, notes ``time.perf_counter()`` at every ``place_order`` of a venue class:
    when the call is made (``when="called"``) or when it returns (``when="returned"``)."""

    def __init__(self, venue_class: type[Any], when: str) -> None:
        self.times: list[float] = []
        self._class, self._when = venue_class, when
        self._original = venue_class.place_order

    def __enter__(self) -> PlaceOrderClock:
        original, times, at_call = self._original, self.times, self._when == "called"

        async def timed_place_order(venue: Any, intent: Any, *args: Any, **kwargs: Any) -> Any:
            if at_call:
                times.append(time.perf_counter())
            ack = await original(venue, intent, *args, **kwargs)
            if not at_call:
                times.append(time.perf_counter())
            return ack

        self._class.place_order = timed_place_order
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._class.place_order = self._original


@contextlib.contextmanager
def profiled(name: str) -> Any:
    """With ``BENCH_PROFILE=<dir>`` (``--profile``), a pyinstrument profile of the block is
    written to ``<dir>/<name>.txt`` and ``.html`` (pyinstrument must be installed; it is not a
    dependency of the project)."""
    import os

    directory = os.environ.get("BENCH_PROFILE")
    if not directory:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{name}.txt").write_text(profiler.output_text(unicode=False, color=False))
        (target / f"{name}.html").write_text(profiler.output_html())
