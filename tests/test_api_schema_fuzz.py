"""schemathesis, as CI runs it: its own command line against the service's real HTTP server (the
ASGI app with its guard, uvicorn on a real socket on 127.0.0.1, the core loop behind it), every
check on, every phase (the schema's examples, coverage, fuzzing and the stateful phase, which
chains operations through the links in the schema: a follow made by POST /follow is then read,
updated, stopped), a bounded number of examples, deterministic generation. It must find nothing: no 5xx,
no status, header or body the schema does not describe, no schema-valid request refused, no
invalid one accepted.

The limits are the service's own kinds (per address, per token, per user, bodies, timeouts) with
buckets large enough for the fuzzer's few thousand requests: a 429 is documented on every route,
but a run answered mostly 429 would test nothing else."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from copytrade.app import build_app
from copytrade.config import Settings
from copytrade.http.limits import Limits, Rate
from copytrade.http.metrics import Metrics
from copytrade.http.server import HttpServer, build_http_app, service_sources
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.vault import generate_key

MAX_EXAMPLES = 30
#: a bound on a failing run, never an expectation
RUN_LIMIT_SECONDS = 600
BURST = 100_000


@pytest.mark.slow
async def test_schemathesis_with_every_check_and_phase_finds_nothing(tmp_path, migrated_sqlite):
    app = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "fuzz.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    master, _ = await create_paper_master(app.services, "Ace", "100000")
    await create_paper_master(app.services, "Bo", "50000")
    follow, _ = await add_paper_follower(app.services, master.id, "Bea", "20000", {"sizing_value": "1"})
    token, _ = await app.api_tokens.create(follow.user_id, "trade")
    metrics = Metrics(service_sources(app))
    limits = Limits(*(Rate(BURST, BURST) for _ in range(3)))
    server = HttpServer(build_http_app(app, metrics, limits=limits), host="127.0.0.1", port=0, metrics=metrics)
    await server.start()
    try:
        cli = Path(sys.executable).with_name("schemathesis")
        process = await asyncio.create_subprocess_exec(
            str(cli),
            "run",
            f"http://127.0.0.1:{server.port}/openapi.json",
            "--checks=all",
            "--phases=examples,coverage,fuzzing,stateful",
            f"--max-examples={MAX_EXAMPLES}",
            "--generation-deterministic",
            "--workers=1",
            "--request-timeout=10",
            "--max-response-time=10",
            f"--header=Authorization: Bearer {token}",
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), RUN_LIMIT_SECONDS)
        report = output.decode(errors="replace")
        assert process.returncode == 0, report
        assert "No issues found" in report, report
    finally:
        await server.stop()
        await app.close()
