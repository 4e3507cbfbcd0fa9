# syntax=docker/dockerfile:1
# Two images from one build: `controller` (controller and admission webhook, non-root)
# and `agent` (the node agent plus gobgpd from Debian). Bookworm everywhere: the GoBGP
# stubs are generated from the protos of the same Debian gobgp release as the daemon.
#   docker build --target controller -t ghcr.io/bgplb/bgplb .
#   docker build --target agent -t ghcr.io/bgplb/bgplb-agent .
# BASE_IMAGE: any Debian bookworm image with python3 (3.11) and its venv module; the
# lab builds one from Debian packages where the public image cannot be pulled.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-github-osrg-gobgp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
COPY webhooks/ webhooks/
# grpcio-tools only generates the stubs (into the source tree, before the install):
# it lives in a throwaway venv, not in the image.
RUN python3 -m venv /tmp/protogen \
 && /tmp/protogen/bin/pip install --no-cache-dir -c constraints.txt grpcio-tools \
 && /tmp/protogen/bin/python operator/bgplb/agent/speaker/protogen.py \
 && python3 -m venv /opt/bgplb \
 && /opt/bgplb/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/bgplb/bin/python -c "import bgplb.agent.speaker.stubs.gobgp_pb2_grpc" \
 && rm -rf /tmp/protogen

FROM ${BASE_IMAGE} AS controller
COPY --from=build /opt/bgplb /opt/bgplb
ENV PATH=/opt/bgplb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
CMD ["bgplb-controller"]

FROM ${BASE_IMAGE} AS agent
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gobgpd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/bgplb /opt/bgplb
ENV PATH=/opt/bgplb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The agent container runs as root with only NET_ADMIN (set by the chart); the
# gobgpd containers of the same image run as 65532.
USER 65532:65532
CMD ["bgplb-agent"]
