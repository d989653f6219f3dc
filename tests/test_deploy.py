"""The deploy files boot the service as the code expects: Dockerfile (multi-stage, non-root, the
port and health check), fly.toml (release migrates, /healthz check, a kill timeout covering the
drain), Procfile (web binds $PORT in both modes: the process itself is tested in test_bot_e2e and
test_logs), docker-compose.yml (PostgreSQL and Redis, the migrate step, the port). The image is
built only where a Docker daemon answers."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from copytrade.cli import build_parser
from copytrade.config import load_settings
from copytrade.http.server import SHUTDOWN_GRACE_SECONDS
from core.copying.config import EngineConfig
from core.venues.ccxt.venue import CcxtVenue

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> set[str]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return set(sub.choices or ())


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert match, text
    value, unit = int(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def test_procfile_releases_with_migrate_and_runs_the_service_as_web():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert {k: v.strip() for k, v in lines.items()} == {"release": "copytrade migrate", "web": "copytrade run"}
    assert {"run", "migrate"} <= _commands()


def test_fly_toml_migrates_on_release_and_checks_healthz_on_the_service_port():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    assert fly["deploy"]["release_command"] == "copytrade migrate"
    service = fly["http_service"]
    assert service["internal_port"] == int(fly["env"]["PORT"])
    assert service["min_machines_running"] >= 1 and service["auto_stop_machines"] == "off"
    [check] = service["checks"]
    assert (check["method"], check["path"]) == ("GET", "/healthz")
    assert fly["kill_signal"] == "SIGTERM"
    load_settings(**{k.lower(): v for k, v in fly["env"].items() if k == "PORT"})  # a PORT the service accepts


def test_fly_kill_timeout_covers_the_drain():
    """HTTP requests get SHUTDOWN_GRACE_SECONDS; a copy in flight may wait out a venue request's
    timeout on its send and on each retry, plus the retry delays."""
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    request_timeout = inspect.signature(CcxtVenue.create).parameters["timeout_ms"].default / 1000
    delays = EngineConfig().retry_delays
    drain = SHUTDOWN_GRACE_SECONDS + request_timeout * (1 + len(delays)) + sum(delays)
    assert _seconds(fly["kill_timeout"]) >= drain


def test_compose_runs_postgres_redis_a_migration_then_the_service_on_its_port():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "copytrade"} <= set(services)
    app = services["copytrade"]
    assert app["command"] == ["copytrade", "run"] and services["migrate"]["command"] == ["copytrade", "migrate"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["ports"] == [f"{app['environment']['PORT']}:{app['environment']['PORT']}"]
    url = app["environment"]["DATABASE_URL"]
    assert url == services["migrate"]["environment"]["DATABASE_URL"] and "@postgres:5432/" in url
    assert load_settings(database_url=url).database_url == url
    postgres = services["postgres"]["environment"]
    assert (
        url
        == f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
        + (postgres["POSTGRES_DB"])
    )
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    assert _seconds(app["stop_grace_period"]) >= _seconds(fly["kill_timeout"])


def _image_env(name: str) -> str:
    final = _dockerfile()[[i for i, line in enumerate(_dockerfile()) if line.startswith("FROM ")][-1] :]
    for line in final:
        if line.startswith("ENV "):
            match = re.search(rf"\b{name}=(\S+)", line)
            if match:
                return match.group(1)
    raise AssertionError(f"the image sets no {name}")


def _mounts(service: dict) -> dict[str, str]:
    """A compose service's mounts, target to source, in the short or the long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def test_compose_keeps_the_data_directory_with_the_paper_key_across_a_recreate():
    """Paper mode generates its secret key in COPYTRADE_DATA_DIR; PostgreSQL is persisted, so a
    recreated container without the key would refuse to start (and restart in a loop)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app = compose["services"]["copytrade"]
    data_dir = app.get("environment", {}).get("COPYTRADE_DATA_DIR") or _image_env("COPYTRADE_DATA_DIR")
    source = _mounts(app).get(data_dir)
    assert source, f"{data_dir} is not mounted: {app.get('volumes')}"
    assert source in (compose.get("volumes") or {}), "a named volume, kept by docker compose down and up"


def _compose_config() -> dict | str:
    """``docker compose config`` as data, or why it cannot run here."""
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    if plugin.returncode != 0:
        return "the docker client has no compose plugin: " + (plugin.stderr.strip().splitlines() or ["?"])[0]
    done = subprocess.run(
        ["docker", "compose", "config", "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_docker_compose_config_is_valid_and_mounts_the_data_directory():
    config = _compose_config()
    if isinstance(config, str):
        pytest.skip(config)
    [mount] = [m for m in config["services"]["copytrade"]["volumes"] if m["target"] == _image_env("COPYTRADE_DATA_DIR")]
    assert mount["type"] == "volume" and mount["source"] in config["volumes"]


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_is_multi_stage_non_root_and_serves_port_and_health():
    lines = _dockerfile()
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2 and all("slim" in line for line in stages)
    final = lines[lines.index(stages[-1]) :]
    [user] = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user not in ("root", "0")
    assert any(line.startswith("COPY --from=") for line in final)  # only the built environment
    assert "EXPOSE 8080" in final and any("PORT=8080" in line for line in final)
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in final)
    assert final[-1] == 'CMD ["copytrade", "run"]'


def test_dockerfile_copies_only_what_exists_and_dockerignore_keeps_secrets_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".env", ".git", ".venv", "node_modules", "data", "*.key"} <= ignored
    for line in _dockerfile():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def _docker_daemon() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "the docker daemon does not answer: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


@pytest.mark.slow
def test_docker_image_builds():
    reason = _docker_daemon()
    if reason is not None:
        pytest.skip(reason)
    build = subprocess.run(
        ["docker", "build", "-t", "copytrade:test", str(ROOT)], capture_output=True, text=True, timeout=1200
    )
    assert build.returncode == 0, build.stderr[-4000:]
    whoami = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", "copytrade:test", "-u"], capture_output=True, text=True
    )
    assert whoami.stdout.strip() != "0"
    helped = subprocess.run(["docker", "run", "--rm", "copytrade:test", "copytrade", "--help"], capture_output=True)
    assert helped.returncode == 0
