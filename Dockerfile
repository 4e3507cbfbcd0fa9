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
# Dependencies first, in layers of their own: a source change rebuilds only the last
# step. grpcio-tools only generates the stubs: a throwaway venv, not in the image.
COPY pyproject.toml constraints.txt README.md ./
RUN python3 -m venv /tmp/protogen \
 && /tmp/protogen/bin/pip install --no-cache-dir -c constraints.txt grpcio-tools
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && python3 -m venv /opt/bgplb \
 && /opt/bgplb/bin/pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY operator/ operator/
COPY webhooks/ webhooks/
RUN /tmp/protogen/bin/python operator/bgplb/agent/speaker/protogen.py \
 && /opt/bgplb/bin/pip install --no-cache-dir --no-deps . \
 && /opt/bgplb/bin/python -c "import bgplb.agent.speaker.stubs.gobgp_pb2_grpc"

FROM ${BASE_IMAGE} AS controller
COPY --from=build /opt/bgplb /opt/bgplb
ENV PATH=/opt/bgplb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
CMD ["bgplb-controller"]

# The agent image is the controller image plus gobgpd: the layers they share are
# stored and pulled once per node.
FROM controller AS agent
USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gobgpd \
 && rm -rf /var/lib/apt/lists/*
# The agent container runs as root with only NET_ADMIN (set by the chart); the
# gobgpd containers of the same image run as 65532.
USER 65532:65532
CMD ["bgplb-agent"]
