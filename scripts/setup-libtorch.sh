#!/usr/bin/env bash
# Installs libtorch (from the PyPI torch wheel) into a per-user cache keyed by
# version and links it into the checkout as ./libtorch. Idempotent: a finished
# install is marked with .complete and reused.
#
#   scripts/setup-libtorch.sh          CPU: torch wheel (--no-deps) + CUDA runtime and CUPTI only
#   scripts/setup-libtorch.sh --cuda   the full CUDA wheel set (cuDNN, cuBLAS, ...) for GPU users
set -euo pipefail

TORCH_VERSION="${MTLBENCH_TORCH_VERSION:-2.11.0}"
CUDA_TOOLKIT_VERSION="${MTLBENCH_CUDA_TOOLKIT_VERSION:-13.0.2}"
CACHE="${MTLBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlbench}"
PYTHON="${PYTHON:-python3}"
flavour=cpu
[ "${1:-}" = "--cuda" ] && flavour=cuda

dest="$CACHE/libtorch-$TORCH_VERSION-$flavour"
root="$(cd "$(dirname "$0")/.." && pwd)"

link() {
  ln -sfn "$dest/site/torch" "$root/libtorch"
  echo "libtorch $TORCH_VERSION ($flavour) ready: $root/libtorch -> $dest/site/torch"
}

if [ -f "$dest/.complete" ]; then
  link
  exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; it is needed to fetch the torch wheel from PyPI" >&2; exit 1; }
mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.partial-libtorch-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "Installing torch==$TORCH_VERSION ($flavour) into $dest (one time, about 1.2 GB for CPU) ..."
pipi() { "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --target "$tmp/site" "$@"; }
if [ "$flavour" = cpu ]; then
  pipi --no-deps "torch==$TORCH_VERSION"
  # libtorch_cpu.so links libcudart and libcupti (readelf -d); nothing else of CUDA is needed on CPU.
  pipi "cuda-toolkit[cudart,cupti]==$CUDA_TOOLKIT_VERSION"
else
  pipi "torch==$TORCH_VERSION"
fi
[ -f "$tmp/site/torch/lib/libtorch_cpu.so" ] || { echo "error: torch wheel has no torch/lib/libtorch_cpu.so" >&2; exit 1; }
touch "$tmp/site/.complete-marker"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
touch "$dest/.complete"
link
