"""The ``copytrade`` command. Configuration errors are one line naming the variable, never a
traceback; exit status 2 for bad configuration or input (an unreachable database or a refused
bot token included), 1 for a failed operation."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from copytrade.config import Settings, load_settings
from copytrade.logs import SecretRedactor, configure_logging
from core.errors import ConfigError, UserError, VaultError

log = logging.getLogger("copytrade")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


#: what ``copytrade demo --json`` prints, key by key (the --help text and the README say the same)
DEMO_JSON_KEYS = {
    "fills": "master fills replayed",
    "placed": "copy orders sent and accepted by the follower's venue",
    "skipped": "copies not sent, each with a reason",
    "failed": "copies the venue refused",
    "pending": "copies whose outcome is still unknown (0 at the end of a run)",
    "duplicates": "orders the venues booked beyond those sent (0: nothing was placed twice)",
    "redelivered_fills_ignored": "fills delivered a second time on purpose and ignored",
    "by_reason": "skipped and failed copies by reason code",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copytrade",
        description="Copy a master trader's fills onto follower accounts. Settings come from the "
        "environment (see README: TELEGRAM_BOT_TOKEN, DATABASE_URL, COPYTRADE_SECRET_KEY, ADMIN_IDS, "
        "COPYTRADE_MODE, ...).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the service (the Telegram bot when TELEGRAM_BOT_TOKEN is set, in paper mode with a simulated "
        "master trading every PAPER_TRADE_SECONDS; in paper mode without a token, a headless copier with a "
        "simulated master)",
    )
    run.add_argument(
        "--interval",
        type=_positive_float,
        default=3.0,
        help="paper mode without a token: seconds between simulated master trades (default 3)",
    )
    run.add_argument(
        "--max-fills",
        type=_positive_int,
        default=None,
        help="paper mode without a token: stop after this many master fills",
    )
    run.add_argument(
        "--seed", type=int, default=None, help="paper mode without a token: random seed of the simulated master"
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="paper mode without a token: also print the skips a follower cannot act on (exits of positions "
        "they hold no copy of, their own filters; by default only counted) and the HTTP access log",
    )
    # -- scaled out (copytrade.scaleout): roles meeting in Redis ---------------------------------
    run.add_argument(
        "--role",
        choices=("all", "listener", "executor", "bot"),
        default="all",
        help="all (default): one process does everything, no Redis. With REDIS_URL and a PostgreSQL "
        "DATABASE_URL: listener (watches the masters, publishes each fill once), executor (copies the fills "
        "to the follower accounts of one shard; needs --shard), bot (Telegram and the notifications)",
    )
    run.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="--role executor: this process copies for shard I (from 0) of N; run several replicas of a shard "
        "for fail-over (one sends, the others stand by)",
    )

    demo = commands.add_parser("demo", help="offline demo: real engine and storage, a paper master, N paper followers")
    demo.add_argument("--followers", type=_positive_int, default=14, help="number of paper followers (default 14)")
    demo.add_argument("--fills", type=_positive_int, default=20, help="number of master fills to replay (default 20)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--json",
        action="store_true",
        help="print only one JSON summary object: "
        + "; ".join(f"{key}: {text}" for key, text in DEMO_JSON_KEYS.items()),
    )

    commands.add_parser("migrate", help="apply database migrations (also done automatically at start)")
    commands.add_parser(
        "rotate-key",
        help="re-encrypt every stored credential with COPYTRADE_SECRET_KEY; old keys listed in "
        "COPYTRADE_OLD_SECRET_KEYS are used to open rows not yet rotated (runs while the service keeps running)",
    )
    commands.add_parser("gen-key", help="print a new random COPYTRADE_SECRET_KEY")
    commands.add_parser(
        "bench",
        help=(
            "run the benchmarks from a source checkout (the same as python -m bench; copytrade bench --help "
            "lists its options)"
        ),
        add_help=False,
    )
    commands.add_parser(
        "chaos",
        help=(
            "run the chaos campaign from a source checkout: the real copier killed and faulted against a fake "
            "exchange process (the same as python -m bench.chaos; copytrade chaos --help lists its options)"
        ),
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["bench"], ["chaos"]):  # their options are their own: handed over unparsed
        return _from_checkout(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "gen-key":
        from core.vault import generate_key

        print(generate_key())
        return 0
    redactor = SecretRedactor()
    try:
        settings = load_settings()
        redactor.add(settings.secrets())
        configure_logging(settings.log_level, json_lines=settings.log_format == "json", redactor=redactor)
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "rotate-key":
            return asyncio.run(_rotate_key(settings, redactor))
        return asyncio.run(_run(settings, args, redactor))
    except (ConfigError, VaultError, UserError) as exc:
        print(f"copytrade: error: {redactor.redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        status = _known_failure(exc, redactor)
        if status is None:
            raise
        return status


def _known_failure(exc: Exception, redactor: SecretRedactor) -> int | None:
    """A failure to tell in one line, and its exit status; ``None`` for a bug (its traceback is
    shown). Imported here, not at the top: a bad setting is told before the libraries load."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from telegram.error import InvalidToken
    from telegram.error import NetworkError as TelegramNetworkError

    if isinstance(exc, InvalidToken):
        print(
            "copytrade: error: TELEGRAM_BOT_TOKEN: Telegram refused the token (copy it again from @BotFather)",
            file=sys.stderr,
        )
        return 2
    if isinstance(exc, TelegramNetworkError):
        print(
            f"copytrade: error: TELEGRAM_BOT_TOKEN: the Telegram Bot API cannot be reached: "
            f"{redactor.redact(_first_line(exc))}",
            file=sys.stderr,
        )
        return 1
    if isinstance(exc, (OperationalError, InterfaceError, OSError)):
        print(f"copytrade: error: DATABASE_URL: cannot open {_safe_url()}: {_first_line(exc)}", file=sys.stderr)
        return 2  # a database that cannot be opened is configuration to fix, like a refused token
    return None


def _from_checkout(command: str, arguments: list[str]) -> int:
    """The benchmarks and the chaos campaign are not part of the installed package (they drive
    the test fakes): they run from the checkout this package was installed from in editable mode."""
    checkout = Path(__file__).resolve().parents[1]
    entry = checkout / "bench" / ("__main__.py" if command == "bench" else "chaos/__main__.py")
    if not entry.is_file() or not (checkout / "tests" / "fakes").is_dir():
        print(
            f"copytrade: error: {command}: needs a source checkout (git clone, then pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 2
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    if command == "bench":
        from bench.__main__ import main as bench_main

        return bench_main(arguments)
    from bench.chaos.__main__ import main as chaos_main

    return chaos_main(arguments)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(load_settings().database_url).render_as_string(hide_password=True)
    except (ConfigError, ArgumentError):
        return "the database"


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


async def _demo(args: argparse.Namespace) -> int:
    from copytrade.demo import run_demo

    summary = await run_demo(args.followers, args.fills, args.seed, echo=None if args.json else print)
    if args.json:
        print(json.dumps(summary))
    else:
        print("\nSummary:", json.dumps(summary, indent=2))
    return 0


def _migrate(settings: Settings) -> int:
    from storage.migrate import current_revision, upgrade

    upgrade(settings.database_url)
    print(f"database at revision {current_revision(settings.database_url)}")
    return 0


async def _rotate_key(settings: Settings, redactor: SecretRedactor) -> int:
    from copytrade.app import load_vault
    from storage.accounts import AccountStore
    from storage.db import Database

    vault = load_vault(settings, redactor.add)
    db = Database(settings.database_url)
    accounts = AccountStore(db)
    resealed = current = 0
    failed: list[str] = []
    try:
        for credential_id in await accounts.sealed_credential_ids():
            sealed = await accounts.sealed_credential(credential_id)
            if sealed is None:
                continue
            if not vault.needs_rotation(sealed.ciphertext):
                current += 1
                continue
            try:
                new = vault.reseal(sealed.ciphertext, owner_id=sealed.user_id, credential_id=sealed.id)
            except VaultError as exc:
                failed.append(str(exc))
                continue
            if await accounts.replace_ciphertext(sealed.id, sealed.ciphertext, new):
                resealed += 1
    finally:
        await db.dispose()
    print(
        f"re-encrypted {resealed} credential(s); {current} already on the current key; {len(failed)} could "
        "not be opened"
    )
    for message in failed:
        print(f"  {message}", file=sys.stderr)
    return 1 if failed else 0


async def _polled(done: Callable[[], bool], every: float = 0.05) -> None:
    """Wait for a counter kept by another component, which offers nothing to await."""
    while not done():  # noqa: ASYNC110 (no event exists for these counters)
        await asyncio.sleep(every)


async def _run(settings: Settings, args: argparse.Namespace, redactor: SecretRedactor) -> int:
    from copytrade.app import build_app, tune_garbage_collector
    from core.scheduler import build_scheduler
    from core.tracking import OrderStreams

    if args.role != "all" or args.shard is not None:  # scaled out: one role of several processes
        from copytrade.scaleout.roles import run_role

        return await run_role(settings, args.role, args.shard, redactor)
    stop = stop_on_signals()  # before anything is built: a stop while starting is a stop too
    app = await build_app(settings, on_secrets=redactor.add)
    tune_garbage_collector()
    streams = OrderStreams(app.engine, app.journal, app.venues, cap=settings.order_stream_cap)
    scheduler = build_scheduler(app.engine, app.services.reports, streams=streams)
    app.register_jobs(scheduler)
    warming: asyncio.Task[None] | None = None
    http = None
    try:
        http = await _start_http(app, redactor)  # first: a web dyno binds $PORT at once
        await app.engine.resume()
        # in the background: the bot answers at once, a fill meanwhile opens what it needs itself
        warming = asyncio.create_task(app.engine.warm_up(), name="venue-warm-up")
        scheduler.start()
        if settings.telegram_bot_token:
            if settings.is_paper:  # a master to follow from the first minute, trading on a schedule
                from copytrade.paper_setup import ensure_paper_setup

                await ensure_paper_setup(app, followers=False)
            return await _run_bot(app, stop, scheduler, http)
        if not settings.is_paper:
            return await _run_headless(app, stop)
        return await _run_paper(app, args, stop)
    finally:
        if warming is not None:
            await _ended(warming)
        scheduler.shutdown(wait=False)
        await streams.close()
        if http is not None:
            await http.stop()
        await app.close()


#: how long a stop waits for the fills already made to be handed over, copied and told; a copy
#: still in flight after it is awaited by ``App.close`` (each send is bounded by its venue's
#: request timeout), one still unknown is settled at the next start
STOP_DRAIN_SECONDS = 8.0


def stop_on_signals() -> asyncio.Event:
    """SIGTERM (docker stop, Fly, Heroku) and SIGINT (Ctrl-C) set the returned event. Both get a
    handler of the process's own: as a container's first process (PID 1) the kernel drops every
    signal without one, and a shell that started it ignoring SIGINT would leave Ctrl-C ignored."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError) as exc:  # not on this platform / not the main thread
            log.warning("%s cannot be handled here (%s): the process stops only by its default action", signum, exc)
    return stop


async def _ended(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait until it has unwound: a task still unwinding when the database is
    disposed would hand its connection back to a closed pool."""
    task.cancel()
    await asyncio.wait([task])


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _settle_before_exit(app, fills_taken: Callable[[], Awaitable[None]] | None = None) -> None:
    """Once ``fills_taken`` (the fills already made are handed over): stop taking fills, let the
    copies in flight finish and their notifications out, for at most ``STOP_DRAIN_SECONDS``."""
    try:
        async with asyncio.timeout(STOP_DRAIN_SECONDS):
            if fills_taken is not None:
                await fills_taken()
            await app.listeners.stop()  # the streams end; the fills handed over are copied first
            await app.engine.drain()
            await _polled(lambda: not app.notifications.pending())
    except TimeoutError:
        log.warning(
            "stopping before every copy was told: /history has each one; a copy still unknown is settled "
            "at the next start"
        )


async def _run_headless(app, stop: asyncio.Event) -> int:
    """No Telegram token outside paper mode: every master watched, each notification a log line,
    until a signal; then the copies in flight finish and a summary line is logged."""
    copies: collections.Counter[str] = collections.Counter()

    async def deliver(event: object) -> None:
        from core.model import CopyResult

        if isinstance(event, CopyResult):
            copies[event.status.value] += 1
        await _log_notification(event)

    await app.start_listeners()
    log.info(
        "copytrade (%s): %d master stream(s) watched; without TELEGRAM_BOT_TOKEN each notification is a log "
        "line; SIGTERM or Ctrl-C stops",
        app.settings.mode.value,
        len(app.listeners.health),
    )
    consumer = asyncio.create_task(app.notifications.consume(deliver), name="notifications")
    try:
        await stop.wait()
        await _settle_before_exit(app)
    finally:
        await _ended(consumer)
    from bot.formatting import format_counts

    log.info("stopped; copies: %s", format_counts(copies))
    return 0


async def _log_notification(event: object) -> None:
    """Headless (no Telegram token): each notification a follower would get is one log line
    (``notification copy=<client order id> status=<status>`` for a copy), not a queue left to fill."""
    from core.model import CopyResult

    if isinstance(event, CopyResult):
        log.info(
            "notification copy=%s status=%s follow=%s origin=%s reason=%s",
            event.client_order_id,
            event.status.value,
            event.follow_id,
            event.origin.value,
            event.reason_code,
        )
    else:
        log.info("notification %s", type(event).__name__)


# -- the HTTP server (issue 17): health, readiness, metrics, webhook, REST API on $PORT -------


async def _start_http(app, redactor: SecretRedactor):
    """The service's HTTP server on $PORT, in every mode. A port already taken is logged, not
    fatal: copying goes on (a second copier beside the first, a test run), unseen by HTTP."""
    from copytrade.http.server import start_http_server

    try:
        http = await start_http_server(app)
    except OSError as exc:
        log.error(
            "HTTP server not started: port %s: %s (set PORT to a free port)", app.settings.port, exc.strerror or exc
        )
        return None
    if http.webhook is not None:
        redactor.add([http.webhook.secret])  # sent to Telegram in setWebhook, received in a header
    return http


# -- end of the HTTP server --------------------------------------------------------------------


async def _run_bot(app, stop: asyncio.Event, scheduler=None, http=None) -> int:
    """The Telegram bot (polling, or webhook when WEBHOOK_URL is set) with every master watched
    and the daily summaries delivered (a job on ``scheduler``) until ``stop`` is set."""
    from bot.app import serve

    await app.start_listeners()
    await serve(
        app,
        stop,
        scheduler=scheduler,
        on_webhook_ready=http.webhook.attach if http is not None and http.webhook is not None else None,
        on_rate_limited=http.metrics.telegram_rate_limited if http is not None else None,
    )
    return 0


async def _run_paper(app, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Headless paper copier: a simulated master trades, followers copy, notifications print,
    until ``--max-fills`` or a signal; then the copies in flight finish and the summary prints."""
    from bot.formatting import format_counts, format_event
    from copytrade.paper_setup import ensure_paper_setup
    from core.model import CopyResult
    from core.notifications import Event, digested
    from core.venues.paper.trader import PaperTrader
    from core.venues.paper.venue import PaperVenue

    master_id, master_credential = await ensure_paper_setup(app)
    master_venue = await app.venues.venue_for(master_credential)
    assert isinstance(master_venue, PaperVenue)
    await app.start_listeners()
    trader = PaperTrader(app.paper, master_venue, random.Random(args.seed))

    copies: collections.Counter[str] = collections.Counter()
    unshown: collections.Counter[str] = collections.Counter()
    if not args.verbose:  # the copies on stdout, not a request log between them (errors still show)
        logging.getLogger("copytrade.http").setLevel(logging.WARNING)

    async def show(event: Event) -> None:
        if isinstance(event, CopyResult):
            copies[event.status.value] += 1
        if digested(event) and not args.verbose:
            unshown["skips"] += 1  # counted in the summary; nothing the follower could do about it
            return
        user = await app.services.user(event.user_id)
        who = user.display_name if user else f"user {event.user_id}"
        print(f"→ {who}: {format_event(event).splitlines()[0]}", flush=True)

    printer = asyncio.create_task(app.notifications.consume(show))
    master_name = await app.services.master_name(master_id)
    print(
        f"copytrade (paper): {master_name} trades every {args.interval}s; Ctrl-C to stop"
        + ("" if args.verbose else " (--verbose: also the skips a follower cannot act on)"),
        flush=True,
    )
    fills = 0
    try:
        while not stop.is_set() and (args.max_fills is None or fills < args.max_fills):
            action = await trader.step()
            fills += 1
            print(f"master: {action}", flush=True)
            await _wait_or_stop(stop, args.interval)

        await _settle_before_exit(app, lambda: _polled(lambda: app.listeners.health[master_id].fills >= fills))
    finally:
        await _ended(printer)
        hidden = f" ({unshown['skips']} skips a follower cannot act on not shown)" if unshown["skips"] else ""
        print(f"copytrade (paper): {fills} master fills; copies: {format_counts(copies)}{hidden}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
