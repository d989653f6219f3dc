# copytrade: a slim, non-root image. `docker build -t copytrade .`; run `copytrade run` (the default
# command) with the settings in the environment (docs/operations.md). The service binds $PORT (8080).

# -- build: wheels of the project and every dependency, in a virtual environment ----------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# dependencies first: this layer is rebuilt only when pyproject.toml changes
COPY pyproject.toml README.md ./
RUN mkdir -p copytrade bot core storage \
    && touch copytrade/__init__.py bot/__init__.py core/__init__.py storage/__init__.py \
    && pip install . \
    && pip uninstall -y copytrade
COPY copytrade ./copytrade
COPY bot ./bot
COPY core ./core
COPY storage ./storage
RUN pip install --no-deps . && find /opt/venv -name "__pycache__" -prune -exec rm -rf {} +

# -- run: the virtual environment only, as an unprivileged user -------------------------------------
FROM python:3.11-slim AS run
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    COPYTRADE_DATA_DIR=/data
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin copytrade \
    && mkdir -p /data && chown copytrade:copytrade /data
COPY --from=build /opt/venv /opt/venv
USER copytrade
WORKDIR /home/copytrade
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
CMD ["copytrade", "run"]
