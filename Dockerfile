# syntax=docker/dockerfile:1
# Two images from one build: `controller` (controller and admission webhook, non-root)
# and `agent` (the node agent plus gobgpd from Debian). Bookworm everywhere: the GoBGP
# stubs are generated from the protos of the same Debian gobgp release as the daemon.
#   docker build --target controller -t ghcr.io/bgplb/bgplb .
#   docker build --target agent -t ghcr.io/bgplb/bgplb-agent .

FROM python:3.11-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-github-osrg-gobgp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
COPY webhooks/ webhooks/
RUN python -m venv /opt/bgplb \
 && /opt/bgplb/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/bgplb/bin/python -m bgplb.agent.speaker.protogen \
 && /opt/bgplb/bin/python -c "import bgplb.agent.speaker.stubs.gobgp_pb2_grpc"

FROM python:3.11-slim-bookworm AS controller
COPY --from=build /opt/bgplb /opt/bgplb
ENV PATH=/opt/bgplb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
CMD ["bgplb-controller"]

FROM python:3.11-slim-bookworm AS agent
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
