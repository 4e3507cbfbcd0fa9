#!/usr/bin/env bash
# Build kube-apiserver from the published k8s.io/kubernetes Go module into a cache
# outside the clone, keyed by version. Prints the binary's path.
#
# k8s.io/kubernetes cannot be required as-is: its go.mod points each staging module
# (k8s.io/api, k8s.io/apiserver, ...) at ./staging and requires it at v0.0.0. A wrapper
# module replaces each one with its published v0.<minor>.<patch> twin instead.
set -euo pipefail

version="${1:-v1.32.13}"
cache="${BGPLB_CACHE:-$HOME/.cache/bgplb}/kube/${version}"
out="$cache/kube-apiserver"
if [[ -x "$out" ]] && "$out" --version 2>/dev/null | grep -q "Kubernetes ${version}\$"; then
  echo "$out"
  exit 0
fi

staging_version="v0.${version#v1.}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

go mod init bgplb.local/kube-build >/dev/null 2>&1
gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
args=()
for mod in "${staging[@]}"; do
  args+=("-replace=${mod}=${mod}@${staging_version}")
done
go mod edit "${args[@]}" "-require=k8s.io/kubernetes@${version}"
cat > main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
go mod tidy -e >/dev/null 2>&1  # test-only deps may be missing from the proxy
rm main.go

commit="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"Hash": "\(.*\)".*/\1/p' | head -1)"
minor="${version#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X ${pkg}.gitCommit=${commit:-unknown}"

mkdir -p "$cache"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$out.tmp" "$out"
echo "$out"
