# syntax=docker/dockerfile:1.7
# Images of TraderBot Operator, one Dockerfile with two final targets:
#
#   docker build --target operator -t ghcr.io/traderbot-dev/traderbot-operator:0.1.0 .
#   docker build --target workload -t ghcr.io/traderbot-dev/trader-api:0.1.0 .
#
# The builder stage turns the project and every dependency into wheels; the
# final stages install one extra from those wheels with the network off, so
# they carry neither a compiler nor the source tree.
#
# NB: the base image is pinned by tag. Release builds pin it by digest too
# (PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:...), which a registry
# resolves at build time; see docs/security.md.
# NB: trixie, not bookworm: trader-backup runs pg_dump, which refuses to dump a
# server newer than itself. The CRD's default database is TimescaleDB on
# PostgreSQL 16; bookworm ships client 15, trixie ships 17.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# checkov:skip=CKV_DOCKER_7: the tag is pinned in ARG PYTHON_IMAGE above, which checkov does not expand
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY workload/ workload/
COPY crds/ crds/
# Our wheel plus one wheel per dependency of both extras (binary wheels where
# PyPI has them), so the final stages install offline from /wheels.
RUN pip wheel --wheel-dir /wheels ".[operator,workload]"

FROM ${PYTHON_IMAGE} AS runtime-base
ARG VERSION=0.1.0
ARG APP_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
LABEL org.opencontainers.image.source="https://github.com/traderbot-dev/traderbot-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="TraderBot Operator developers"
# A fixed, numeric non-root identity: the chart and the operator's pod specs set
# runAsUser/runAsGroup/fsGroup 10001 and runAsNonRoot, which kubelet can only
# verify against a numeric USER.
RUN groupadd --gid "${APP_UID}" trader \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin trader
WORKDIR /app

FROM runtime-base AS operator
ARG VERSION=0.1.0
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "traderbot-operator[operator]==${VERSION}"
USER 10001:10001
# kopf's /healthz (probes) and the operator's Prometheus /metrics; see
# traderbot-operator --help (TRADERBOT_LIVENESS_PORT, TRADERBOT_METRICS_PORT).
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["traderbot-operator"]

FROM runtime-base AS workload
ARG VERSION=0.1.0
# The backup program (trader-backup) runs pg_dump/pg_restore and redis-cli.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-17 redis-tools \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "traderbot-operator[workload]==${VERSION}"
USER 10001:10001
# REST, WebSocket, /health, /health/ready and /metrics.
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=2)"]
ENTRYPOINT ["trader-api"]
