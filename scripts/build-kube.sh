#!/usr/bin/env bash
# Build Kubernetes binaries from the published k8s.io/kubernetes Go module into a cache
# outside the clone, keyed by version: kube-apiserver for the tests, and kubelet,
# kube-controller-manager, kube-scheduler, kube-proxy and kubectl for the lab's real
# nodes, all from the same version. Prints the cache directory.
#
#   scripts/build-kube.sh [VERSION] [BINARY...]     (default: v1.32.13, all six)
#
# k8s.io/kubernetes cannot be required as-is: its go.mod points each staging module
# (k8s.io/api, k8s.io/apiserver, ...) at ./staging and requires it at v0.0.0. A wrapper
# module replaces each one with its published v0.<minor>.<patch> twin instead.
set -euo pipefail

version="${1:-v1.32.13}"
shift || true
binaries=("$@")
((${#binaries[@]})) || binaries=(kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)
cache="${BGPLB_CACHE:-$HOME/.cache/bgplb}/kube/${version}"

built() {  # $1 binary: present and reporting this exact version
  local out args=(--version)
  [[ "$1" == kubectl ]] && args=(version --client)
  [[ -x "$cache/$1" ]] || return 1
  # Read all of it before matching: `grep -q` in a pipe exits at the first match and
  # kubectl's second line then dies of SIGPIPE, which pipefail reports as "not built".
  out="$("$cache/$1" "${args[@]}" 2>/dev/null)" || return 1
  grep -q "${version}\$" <<<"$out"
}
todo=()
for b in "${binaries[@]}"; do built "$b" || todo+=("$b"); done
if ((${#todo[@]} == 0)); then
  echo "$cache"
  exit 0
fi

# The proxy refuses some staging modules at this patch level ("403 Forbidden ... This
# module version is not available"); these patch versions are served and build. If
# the proxy changes its mind, `go mod download` below fails loudly naming the module.
declare -A pinned=(
  [k8s.io/cri-client]=v0.32.10
  [k8s.io/csi-translation-lib]=v0.32.10
  [k8s.io/kube-scheduler]=v0.32.10
  [k8s.io/kube-controller-manager]=v0.32.5
  [k8s.io/endpointslice]=v0.32.5
  [k8s.io/kube-proxy]=v0.32.5
)

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
  args+=("-replace=${mod}=${mod}@${pinned[$mod]:-$staging_version}")
done
go mod edit "${args[@]}" "-require=k8s.io/kubernetes@${version}"
for mod in "${!pinned[@]}"; do
  go mod download "${mod}@${pinned[$mod]}" || {
    echo "build-kube: the module proxy no longer serves ${mod}@${pinned[$mod]}; pick another patch version" >&2
    exit 1
  }
done
# Resolve the module graph for all six, whichever are missing: building one alone
# (kubectl) lets `go mod tidy` pick dependency versions that do not compile together.
{
  echo "package main"
  echo
  for b in kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy; do
    echo "import _ \"k8s.io/kubernetes/cmd/${b}/app\""
  done
  echo 'import _ "k8s.io/kubectl/pkg/cmd"'
  echo
  echo "func main() {}"
} > main.go
go mod tidy -e >/dev/null 2>&1  # test-only deps of some packages are missing from the proxy
rm main.go

commit="$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"Hash": "\(.*\)".*/\1/p' | head -1)"
minor="${version#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X ${pkg}.gitVersion=${version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X ${pkg}.gitCommit=${commit:-unknown}"
# kubectl's version lives in client-go's copy as well.
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${version}"

mkdir -p "$cache"
for b in "${todo[@]}"; do
  echo "build-kube: building $b ${version}" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$cache/$b.tmp" "$cache/$b"
  built "$b" || { echo "build-kube: $b does not report ${version}" >&2; exit 1; }
done
echo "$cache"
