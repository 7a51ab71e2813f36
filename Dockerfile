# Images of TraderBot Operator, one Dockerfile with two final targets:
#
#   docker build --target operator -t ghcr.io/traderbot-dev/traderbot-operator:0.1.0 .
#   docker build --target workload -t ghcr.io/traderbot-dev/trader-api:0.1.0 .
#
# hack/images.sh builds both here, with no image registry (docs/images.md).
#
# The builder stage turns the project and every dependency into wheels; the
# final stages install one extra from those wheels with the network off, so
# they carry neither a compiler nor the source tree.
#
# NB: the base is Debian's own image and Python comes from Debian's packages
# (python3 3.13 in trixie), in a virtualenv at /opt/venv on PATH, so pip may
# install there despite PEP 668. hack/images.sh builds this same file FROM a
# `debootstrap --variant=minbase` of the same suite, which is what Debian's
# images are made from, so what is tested here is what users build. Pinned by
# its dated tag; release builds pin the digest too
# (BASE_IMAGE=debian:trixie-20251020-slim@sha256:...); see docs/security.md.
# NB: trixie, not bookworm: trader-backup runs pg_dump, which refuses to dump a
# server newer than itself. The CRD's default database is TimescaleDB on
# PostgreSQL 16; bookworm ships client 15, trixie ships 17.
# NB: no `# syntax=` line: it makes BuildKit pull a frontend image from a
# registry. The frontend built into Docker 20.10 and later handles RUN --mount.
ARG BASE_IMAGE=debian:trixie-20251020-slim

# checkov:skip=CKV_DOCKER_7: the tag is pinned in ARG BASE_IMAGE above, which checkov does not expand
FROM ${BASE_IMAGE} AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

FROM python AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY workload/ workload/
COPY crds/ crds/
# Our wheel plus one wheel per dependency of both extras (binary wheels where
# PyPI has them), so the final stages install offline from /wheels. pip's
# cache is a cache mount: a rebuild after a source change downloads nothing
# again, and no layer keeps it.
# The optional secret `ca` is a CA bundle for pip, for a network that
# intercepts TLS (hack/images.sh passes the host's); a build without it uses
# the image's own ca-certificates.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip wheel --wheel-dir /wheels ".[operator,workload]"

FROM python AS runtime-base
ARG VERSION=0.1.0
ARG APP_UID=10001
ENV PIP_NO_CACHE_DIR=1
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
