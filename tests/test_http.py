"""The service's HTTP server on a real socket (uvicorn in this process, httpx as the client):
health, readiness, metrics fed by a real copy, and every REST API route with the token of the
right user, of the wrong user, of a read-only scope, revoked, and rate-limited."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
import pytest

from copytrade.app import build_app
from copytrade.config import Settings
from copytrade.http.api import PREFIX
from copytrade.http.limits import Limits, Rate
from copytrade.http.metrics import Metrics
from copytrade.http.server import HttpServer, Readiness, build_http_app, service_sources, start_http_server
from copytrade.paper_setup import add_paper_follower, create_paper_master
from core.vault import generate_key
from core.venues.paper.trader import PaperTrader
from tests.harness import eventually

#: a rate that refills one request in about three hours: within a test, the buckets hold their burst only
STOPPED = 1e-4


@pytest.fixture
async def app(tmp_path, migrated_sqlite):
    service = await build_app(
        Settings(database_url=migrated_sqlite(tmp_path / "http.db"), secret_key=generate_key(), data_dir=tmp_path)
    )
    yield service
    await service.close()


@pytest.fixture
async def served(app):
    server = await start_http_server(app, host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            yield app, client
    finally:
        await server.stop()


async def _copy_one_master_trade(app):
    """A paper master with one follower makes one trade; the running listener copies it."""
    master, key = await create_paper_master(app.services, "Ace", "100000")
    follow, account = await add_paper_follower(app.services, master.id, "Bea", "20000", {"sizing_value": "1"})
    venue = await app.venues.venue_for(key.id)
    await app.start_listeners()
    await PaperTrader(app.paper, venue, random.Random(3)).step()
    await eventually(lambda: app.listeners.health[master.id].fills >= 1, "the fill reached the listener")
    await app.listeners.idle()
    return master, follow, account


def _sample(exposition: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.M)
    for match in pattern.finditer(exposition):
        if all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()) or not wanted:
            return float(match.group(2))
    raise AssertionError(f"no sample {name}{{{wanted}}} in the exposition")


async def test_healthz_answers_ok(served):
    _, client = served
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_the_database_up_and_no_master(served):
    _, client = served
    response = await client.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "ready"


async def test_readyz_is_503_naming_a_master_stream_that_cannot_connect(served):
    app, client = served

    async def refused():
        raise ConnectionError("venue down")

    await app.listeners.start(41, refused)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["master streams not connected: 41"]


async def test_readyz_is_503_when_the_notification_backlog_reaches_its_bound(app):
    metrics = Metrics(service_sources(app))
    http = build_http_app(app, metrics, readiness=Readiness(app.db.ping, service_sources(app), backlog_limit=1))
    server = HttpServer(http, host="127.0.0.1", port=0, metrics=metrics)
    await server.start()
    try:
        master, follow, _ = await _copy_one_master_trade(app)  # notifications queued, nobody drains them
        backlog = app.notifications.pending()
        assert backlog >= 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reasons"] == [f"notification backlog {backlog} at or over 1"]
    finally:
        await server.stop()


async def test_readyz_is_503_when_the_database_is_unreachable(app, tmp_path):
    async def unreachable():
        raise OSError("connection refused")

    metrics = Metrics(service_sources(app))
    server = HttpServer(
        build_http_app(app, metrics, readiness=Readiness(unreachable, service_sources(app))),
        host="127.0.0.1",
        port=0,
        metrics=metrics,
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["reasons"] == ["database not reachable (OSError)"]
    finally:
        await server.stop()


async def test_metrics_count_a_real_copy_from_fill_to_acknowledgement(served):
    app, client = served
    master, _, _ = await _copy_one_master_trade(app)
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _sample(text, "copytrade_fills_received_total") == 1
    assert _sample(text, "copytrade_copy_latency_seconds_count", venue="paper") == 1
    assert _sample(text, "copytrade_copy_orders_total", status="filled", reason="") == 1
    assert _sample(text, "copytrade_journal_commit_seconds_count", operation="fill") == 1
    assert _sample(text, "copytrade_journal_commit_seconds_count", operation="report") == 1
    assert _sample(text, "copytrade_listeners") == _sample(text, "copytrade_listeners_connected") == 1
    assert _sample(text, "copytrade_listener_reconnects_total") == 0
    assert _sample(text, "copytrade_listener_last_event_age_seconds") >= 0
    assert f'"{master.id}"' not in text  # no master's id in the public metrics
    assert _sample(text, "copytrade_notification_backlog") == app.notifications.pending()
    assert "copytrade_telegram_rate_limited_total 0.0" in text
    assert "copytrade_order_retries_total{" not in text  # the paper venue answered the first time


async def test_two_services_in_one_process_keep_their_own_metrics(tmp_path):
    apps = []
    for name in ("one", "two"):
        apps.append(
            await build_app(
                Settings(
                    database_url=f"sqlite:///{tmp_path / (name + '.db')}",
                    secret_key=generate_key(),
                    data_dir=tmp_path / name,
                )
            )
        )
    try:
        first, second = (Metrics(service_sources(a)) for a in apps)
        first.order_retried("paper", "rate_limited")
        assert 'copytrade_order_retries_total{cause="rate_limited",venue="paper"} 1.0' in first.exposition().decode()
        assert 'cause="rate_limited"' not in second.exposition().decode()
    finally:
        for service in apps:
            await service.close()


# -- the REST API ---------------------------------------------------------------------------------


async def _users(app):
    """Ann follows the master through the API's fixture trade; Bob is another user."""
    master, follow, account = await _copy_one_master_trade(app)
    ann = follow.user_id
    bob = (await app.services.register_user(90_002, "Bob")).id
    bob_key = await app.services.connect_account(
        bob, "paper", "bob", {"api_key": "paper-follower-bob", "balance": "5000"}, environment="paper"
    )
    tokens = app.api_tokens
    ann_trade, _ = await tokens.create(ann, "trade", "ann trade")
    ann_read, _ = await tokens.create(ann, "read")
    bob_trade, _ = await tokens.create(bob, "trade")
    return master, follow, account, bob_key, ann_trade, ann_read, bob_trade


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: httpx.Response) -> dict:
    body = response.json()
    assert response.status_code == 200, body
    assert body["code"] == "00000" and body["msg"] == "success" and isinstance(body["requestTime"], int)
    return body["data"]


def _error(response: httpx.Response, status: int, code: str) -> str:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert set(body) == {"code", "msg", "requestTime", "data"} and body["data"] is None
    return body["msg"]


async def test_every_api_route_answers_its_owner_in_the_envelope(served):
    app, client = served
    master, follow, account, _, ann, _, _ = await _users(app)
    headers = _bearer(ann)

    traders = _ok(await client.get(f"{PREFIX}/traders", params={"pageSize": 1, "sortBy": "followers"}, headers=headers))
    assert traders["totalNum"] == 1 and traders["currentPage"] == 1 and traders["pageSize"] == 1
    [listed] = traders["list"]
    assert listed["traderId"] == str(master.id) and listed["nickName"] == "Ace" and listed["followersCount"] == 1

    detail = _ok(await client.get(f"{PREFIX}/trader/detail", params={"traderId": str(master.id)}, headers=headers))
    assert detail["statistics"]["totalTrades"] >= 0 and len(detail["positions"]) == 1

    history = _ok(await client.get(f"{PREFIX}/history", params={"followId": str(follow.id)}, headers=headers))
    assert history["totalNum"] == 1
    [order] = history["list"]
    assert order["followId"] == str(follow.id) and order["status"] == "filled" and order["createTime"] > 0
    in_the_past = {"followId": str(follow.id), "startTime": 0, "endTime": 1000}
    assert _ok(await client.get(f"{PREFIX}/history", params=in_the_past, headers=headers))["totalNum"] == 0

    positions = _ok(await client.get(f"{PREFIX}/positions", params={"followId": str(follow.id)}, headers=headers))
    assert [p["symbol"] for p in positions] == [detail["positions"][0]["symbol"]]
    assert positions[0]["size"] == detail["positions"][0]["size"]  # coefficient 1

    updated = _ok(
        await client.post(
            f"{PREFIX}/updateSettings",
            json={"followId": str(follow.id), "copyAmount": "150", "leverage": "5", "takeProfit": "40"},
            headers=headers,
        )
    )
    assert (updated["copyAmount"], updated["leverage"], updated["takeProfit"]) == ("150", "5", "40")
    assert (await app.services.own_follow(follow.user_id, follow.id)).leverage == 5

    stopped = _ok(await client.post(f"{PREFIX}/stop", json={"followId": str(follow.id)}, headers=headers))
    assert stopped == {"followId": str(follow.id), "status": "stopped", "closingOrders": 0}

    again = _ok(
        await client.post(
            f"{PREFIX}/follow",
            json={"traderId": str(master.id), "copyAmount": "100", "leverage": "3", "marginMode": "isolated"},
            headers=headers,
        )
    )
    assert again["status"] == "active" and again["accountId"] == account.id and again["marginMode"] == "isolated"
    follows = _ok(await client.get(f"{PREFIX}/follows", headers=headers))
    assert [f["followId"] for f in follows] == [str(follow.id)]


async def test_another_users_token_never_reaches_a_follow(served):
    app, client = served
    master, follow, _, bob_key, _, _, bob = await _users(app)
    headers = _bearer(bob)
    follow_id = str(follow.id)
    for response in (
        await client.get(f"{PREFIX}/history", params={"followId": follow_id}, headers=headers),
        await client.get(f"{PREFIX}/positions", params={"followId": follow_id}, headers=headers),
        await client.post(f"{PREFIX}/stop", json={"followId": follow_id}, headers=headers),
        await client.post(f"{PREFIX}/updateSettings", json={"followId": follow_id, "leverage": "9"}, headers=headers),
    ):
        assert _error(response, 404, "40004") == "no such follow"
    assert _ok(await client.get(f"{PREFIX}/follows", headers=headers)) == []
    row = await app.services.own_follow(follow.user_id, follow.id)
    assert row.status.value == "active" and row.leverage is None  # nothing changed
    # Bob may follow the same master with his own account: his follow, not Ann's
    mine = _ok(await client.post(f"{PREFIX}/follow", json={"traderId": str(master.id)}, headers=headers))
    assert mine["accountId"] == bob_key.id and mine["followId"] != follow_id


async def test_api_errors_carry_the_seed_codes(served):
    app, client = served
    master, follow, account, _, ann, _, _ = await _users(app)
    headers = _bearer(ann)
    unknown = await client.get(f"{PREFIX}/trader/detail", params={"traderId": "999"}, headers=headers)
    _error(unknown, 404, "80001")
    not_an_id = await client.post(f"{PREFIX}/follow", json={"traderId": "abc"}, headers=headers)
    assert "traderId must be an id" in _error(not_an_id, 400, "40000")
    bad = await client.post(
        f"{PREFIX}/updateSettings", json={"followId": str(follow.id), "leverage": "0.5"}, headers=headers
    )
    assert "leverage" in _error(bad, 400, "80002")
    both = await client.post(
        f"{PREFIX}/updateSettings",
        json={"followId": str(follow.id), "copyAmount": "5", "coefficient": "2"},
        headers=headers,
    )
    _error(both, 400, "80002")
    _error(
        await client.post(f"{PREFIX}/updateSettings", json={"followId": str(follow.id)}, headers=headers), 400, "80002"
    )
    already = await client.post(f"{PREFIX}/follow", json={"traderId": str(master.id)}, headers=headers)
    _error(already, 409, "80005")
    assert (await app.services.own_follow(follow.user_id, follow.id)).leverage is None  # nothing changed
    _error(await client.get(f"{PREFIX}/traders", params={"pageSize": 101}, headers=headers), 400, "40000")
    _error(await client.get(f"{PREFIX}/traders", params={"sortBy": "luck"}, headers=headers), 400, "40000")
    _error(await client.get(f"{PREFIX}/nowhere", headers=headers), 404, "40004")
    _error(await client.delete(f"{PREFIX}/traders", headers=headers), 405, "40005")


async def test_api_refuses_missing_unknown_revoked_and_read_only_tokens(served):
    app, client = served
    _, follow, _, _, ann, ann_read, _ = await _users(app)
    _error(await client.get(f"{PREFIX}/traders"), 401, "40001")
    _error(await client.get(f"{PREFIX}/traders", headers=_bearer("ctk_" + "x" * 43)), 401, "40001")
    assert _ok(await client.get(f"{PREFIX}/traders", headers=_bearer(ann_read)))["totalNum"] == 1
    refused = await client.post(f"{PREFIX}/stop", json={"followId": str(follow.id)}, headers=_bearer(ann_read))
    _error(refused, 403, "40003")
    assert (await app.services.own_follow(follow.user_id, follow.id)).status.value == "active"
    [trade_view, read_view] = await app.api_tokens.of_user(follow.user_id)
    await app.api_tokens.revoke(follow.user_id, read_view.id)
    _error(await client.get(f"{PREFIX}/traders", headers=_bearer(ann_read)), 401, "40001")
    assert trade_view.scope.value == "trade"


async def test_a_user_cannot_revoke_another_users_token(app):
    from core.errors import NotFound

    ann = await app.services.register_user(90_006, "Ann")
    bob = await app.services.register_user(90_007, "Bob")
    token, view = await app.api_tokens.create(ann.id, "read")
    with pytest.raises(NotFound, match=f"no API token {view.id} of yours"):
        await app.api_tokens.revoke(bob.id, view.id)
    assert await app.api_tokens.authenticate(token) == view


async def test_tokens_are_stored_only_as_hashes(app):
    from sqlalchemy import select

    from storage.models import ApiToken

    user = await app.services.register_user(90_003, "Cy")
    token, view = await app.api_tokens.create(user.id, "read", "cli")
    async with app.db.session() as session:
        [row] = (await session.execute(select(ApiToken))).scalars().all()
    stored = " ".join(str(v) for v in row.model_dump().values())
    assert token not in stored and token[4:] not in stored and view.shown.endswith("…")


async def test_api_rate_limits_each_token_on_its_own(app):
    limits = Limits(
        per_address=Rate(100, STOPPED),
        per_token=Rate(2, STOPPED),
        per_user=Rate(3, STOPPED),
    )
    one = await app.services.register_user(90_004, "Di")
    two = await app.services.register_user(90_005, "Ed")
    first, _ = await app.api_tokens.create(one.id, "read")
    second, _ = await app.api_tokens.create(two.id, "read")
    server = await start_http_server(app, host="127.0.0.1", port=0, limits=limits)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for _ in range(2):
                _ok(await client.get(f"{PREFIX}/traders", headers=_bearer(first)))
            refused = await client.get(f"{PREFIX}/traders", headers=_bearer(first))
            _error(refused, 429, "40029")
            assert int(refused.headers["retry-after"]) >= 1
            _ok(await client.get(f"{PREFIX}/traders", headers=_bearer(second)))
    finally:
        await server.stop()


async def test_a_users_tokens_share_one_rate(app):
    """Five tokens are not five times the rate, nor is a token made after another was revoked a fresh burst."""
    limits = Limits(
        per_address=Rate(100, STOPPED),
        per_token=Rate(100, STOPPED),
        per_user=Rate(3, STOPPED),
    )
    user = await app.services.register_user(90_006, "Fay")
    tokens = [(await app.api_tokens.create(user.id, "read"))[0] for _ in range(2)]
    server = await start_http_server(app, host="127.0.0.1", port=0, limits=limits)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for token in (tokens[0], tokens[1], tokens[0]):
                _ok(await client.get(f"{PREFIX}/traders", headers=_bearer(token)))
            _error(await client.get(f"{PREFIX}/traders", headers=_bearer(tokens[1])), 429, "40029")
            _, view = await app.api_tokens.create(user.id, "read")
            await app.api_tokens.revoke(user.id, view.id)
            fresh, _ = await app.api_tokens.create(user.id, "read")
            _error(await client.get(f"{PREFIX}/traders", headers=_bearer(fresh)), 429, "40029")
    finally:
        await server.stop()


async def test_openapi_describes_every_api_route(served):
    _, client = served
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) == {
        f"{PREFIX}/{p}"
        for p in ("traders", "trader/detail", "follow", "stop", "updateSettings", "follows", "history", "positions")
    }


async def test_http_access_log_keeps_tokens_and_query_strings_out(served, caplog):
    app, client = served
    _, follow, _, _, ann, _, _ = await _users(app)
    caplog.set_level("DEBUG")
    caplog.set_level("DEBUG", logger="copytrade.http")  # a quiet headless run lowers it (not --verbose)
    await client.get(f"{PREFIX}/history", params={"followId": str(follow.id), "token": ann}, headers=_bearer(ann))
    await asyncio.sleep(0)
    lines = [r.getMessage() for r in caplog.records if r.name == "copytrade.http"]
    assert any(f"GET {PREFIX}/history 200" in line for line in lines)
    served_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test's client
    assert served_side and not any(ann in r.getMessage() or "followId" in r.getMessage() for r in served_side)


def _count_queries(app) -> list[str]:
    """Every statement the service's database engine executes from now on."""
    from sqlalchemy import event

    statements: list[str] = []
    event.listen(app.db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


async def test_a_token_issued_before_tokens_carried_a_checksum_still_authenticates(served):
    import secrets

    from core.api_tokens import TokenScope, token_hash
    from storage.api_tokens import ApiTokenStore

    app, client = served
    user = await app.services.register_user(90_010, "Gus")
    legacy = "ctk_" + secrets.token_urlsafe(32)  # how /apitoken made tokens before the checksum
    await ApiTokenStore(app.db).create_api_token(user.id, token_hash(legacy), legacy[:10] + "…", TokenScope.READ, "old")
    assert _ok(await client.get(f"{PREFIX}/follows", headers=_bearer(legacy))) == []


async def test_a_made_up_or_mistyped_token_is_refused_without_a_database_query(served):
    from core.api_tokens import new_token

    app, client = served
    real = new_token()
    mistyped = real[:10] + ("A" if real[10] != "A" else "B") + real[11:]  # its checksum no longer matches
    queries = _count_queries(app)
    for token in ("ctk_" + "x" * 49, mistyped, "ctk_" + "x" * 44, "ctk_" + "é" * 43, "bogus", "ctk_" + "x" * 200):
        headers = {"Authorization": f"Bearer {token}".encode()}
        _error(await client.get(f"{PREFIX}/traders", headers=headers), 401, "40001")
    assert queries == []
    # an old-format value has no checksum: it costs one lookup (the counter sees it), and is refused
    _error(await client.get(f"{PREFIX}/traders", headers=_bearer("ctk_" + "y" * 43)), 401, "40001")
    assert queries


async def test_a_flood_of_old_format_tokens_is_limited_per_address_before_any_query(app):
    limits = Limits(
        per_address=Rate(3, STOPPED),
        per_token=Rate(100, STOPPED),
        per_user=Rate(100, STOPPED),
    )
    server = await start_http_server(app, host="127.0.0.1", port=0, limits=limits)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            queries = _count_queries(app)
            for n in range(3):
                _error(await client.get(f"{PREFIX}/traders", headers=_bearer(f"ctk_{n:043d}")), 401, "40001")
            looked_up = len(queries)
            assert looked_up >= 3
            for n in range(3, 20):
                _error(await client.get(f"{PREFIX}/traders", headers=_bearer(f"ctk_{n:043d}")), 429, "40029")
            assert len(queries) == looked_up
    finally:
        await server.stop()


# -- strict inputs and visibility ---------------------------------------------------------------


async def test_an_id_of_other_digits_than_0_to_9_is_a_400_naming_the_field(served):
    """``"²".isdigit()`` is true and ``int("²")`` fails: the API must not answer 500."""
    app, client = served
    _, follow, _, _, ann, _, _ = await _users(app)
    headers = _bearer(ann)
    for text in ("²", "٣", "１"):
        detail = await client.get(f"{PREFIX}/trader/detail", params={"traderId": text}, headers=headers)
        assert "traderId must be an id: 1 to 18 digits 0-9" in _error(detail, 400, "40000")
        history = await client.get(f"{PREFIX}/history", params={"followId": text}, headers=headers)
        assert "followId must be an id" in _error(history, 400, "40000")
        stop = await client.post(f"{PREFIX}/stop", json={"followId": text}, headers=headers)
        assert "followId must be an id" in _error(stop, 400, "40000")
    assert (await app.services.own_follow(follow.user_id, follow.id)).status.value == "active"


async def test_an_amount_with_a_thousands_separator_is_a_400_and_changes_nothing(served):
    app, client = served
    _, follow, _, _, ann, _, _ = await _users(app)
    before = await app.services.own_follow(follow.user_id, follow.id)
    for amount in ("1,000", "1_0", "1e3", "５", "٣"):
        refused = await client.post(
            f"{PREFIX}/updateSettings", json={"followId": str(follow.id), "copyAmount": amount}, headers=_bearer(ann)
        )
        message = _error(refused, 400, "40000")
        assert "copyAmount must be a plain number such as 1000 or 0.5" in message and "thousands separators" in message
    assert await app.services.own_follow(follow.user_id, follow.id) == before


async def test_a_hidden_master_cannot_be_followed_through_the_api(served):
    from core.model import MasterStatus

    app, client = served
    master, _, _, bob_key, _, _, bob = await _users(app)
    await app.services.set_master_status(master.id, MasterStatus.HIDDEN)
    refused = await client.post(
        f"{PREFIX}/follow", json={"traderId": str(master.id), "accountId": bob_key.id}, headers=_bearer(bob)
    )
    _error(refused, 404, "80001")
    assert _ok(await client.get(f"{PREFIX}/follows", headers=_bearer(bob))) == []


async def test_the_webhook_answers_400_to_a_body_that_is_not_a_telegram_update(app):
    from telegram.ext import Application

    from copytrade.http.server import TelegramWebhook

    token = "123456:webhook-test"
    webhook = TelegramWebhook("http://127.0.0.1/telegram-hook", token)
    application = Application.builder().token(token).updater(None).build()
    webhook.attach(application)
    metrics = Metrics(service_sources(app))
    server = HttpServer(build_http_app(app, metrics, webhook=webhook), host="127.0.0.1", port=0, metrics=metrics)
    await server.start()
    try:
        headers = {"X-Telegram-Bot-Api-Secret-Token": webhook.secret, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers) as client:
            for body in (b"[]", b'"x"', b"null", b"{}", b'{"update_id": "7"}', b"42"):
                refused = await client.post("/telegram-hook", content=body)
                assert (refused.status_code, refused.text) == (400, "not a Telegram update"), body
            assert application.update_queue.empty()
            update = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}}
            assert (await client.post("/telegram-hook", json=update)).status_code == 200
            queued = await application.update_queue.get()
            assert getattr(queued, "update_id", None) == 7
    finally:
        await server.stop()
