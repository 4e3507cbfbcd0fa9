#!/usr/bin/env bash
# Install the Debian packages the tests and the lab run for real, if missing.
# Idempotent and quiet when everything is present.
set -euo pipefail

declare -A need=(
  [gobgpd]=gobgpd
  [/usr/lib/frr/bgpd]=frr
  [bird]=bird2
  [/usr/share/gocode/src/github.com/osrg/gobgp/api/gobgp.proto]=golang-github-osrg-gobgp-dev
  [ip]=iproute2
  [etcd]=etcd-server
  [ping]=iputils-ping
  # The lab's real nodes and their images (../shared/REAL-NODES-NOTES.md).
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [conntrack]=conntrack
  [socat]=socat
  [nsenter]=util-linux
  [mmdebstrap]=mmdebstrap
  [buildah]=buildah
)
missing=()
for probe in "${!need[@]}"; do
  if [[ "$probe" == /* ]]; then [[ -e "$probe" ]] || missing+=("${need[$probe]}")
  else command -v "$probe" >/dev/null 2>&1 || missing+=("${need[$probe]}"); fi
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
