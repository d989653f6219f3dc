"""schemathesis fuzzes the REST API from its own OpenAPI schema, over a real socket, with valid
and invalid inputs (positive and negative generation modes): no answer is a 5xx, and every answer is in
the seed's envelope ``{code, msg, requestTime, data}``. Bounded (``MAX_EXAMPLES`` per operation
and kind) so that the suite stays fast; tests/test_api_schema_fuzz.py runs schemathesis with every
check and phase."""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from copytrade.app import build_app
from copytrade.config import Settings
from copytrade.http.limits import Limits
from copytrade.http.metrics import Metrics
from copytrade.http.server import HttpServer, build_http_app, service_sources
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.vault import generate_key

MAX_EXAMPLES = 25


def _in_the_envelope(response) -> None:
    body = response.json()
    assert set(body) == {"code", "msg", "requestTime", "data"}, body
    assert isinstance(body["code"], str) and isinstance(body["requestTime"], int)
    assert (body["code"] == "00000") == (response.status_code == 200), body


async def test_fuzzed_requests_never_get_a_5xx_and_always_the_envelope(tmp_path, migrated_sqlite):
    app = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "fuzz.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    master, _ = await create_paper_master(app.services, "Ace", "100000")
    follow, _ = await add_paper_follower(app.services, master.id, "Bea", "20000", {"sizing_value": "1"})
    token, _ = await app.api_tokens.create(follow.user_id, "trade")
    # the service's HTTP app without its rate limits: the fuzzer sends hundreds of requests at once
    metrics = Metrics(service_sources(app))
    fuzzed = build_http_app(app, metrics, limits=Limits.unlimited())
    server = HttpServer(fuzzed, host="127.0.0.1", port=0, metrics=metrics)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            raw = (await client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(raw)
        results = list(schema.get_all_operations())
        assert all(isinstance(result, Ok) for result in results), results  # the schema is valid
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == 8
        seen = 0

        def fuzz(operation, mode: GenerationMode) -> None:
            nonlocal seen

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def one(case) -> None:
                nonlocal seen
                response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                case.validate_response(response, checks=(not_a_server_error,))
                _in_the_envelope(response)
                seen += 1

            one()

        for operation in operations:
            has_input = bool(list(operation.query) or list(operation.body))
            for mode in GenerationMode if has_input else [GenerationMode.POSITIVE]:  # nothing to break otherwise
                await asyncio.to_thread(fuzz, operation, mode)
        assert seen >= len(operations) * 5
    finally:
        await server.stop()
        await app.close()
