#!/usr/bin/env bash
# Installs the Python side of `bench-perf` (the PyTorch eager reference and
# scikit-learn's roc_auc_score) into a per-user virtual environment keyed by
# the torch version, and prints its interpreter. Idempotent: a finished
# install is marked with .complete and reused. `make test` never needs it.
#
# The PyPI Linux torch wheel is a CUDA build: `import torch` loads the CUDA
# wheel set (cuDNN, cuBLAS, NCCL, ...), about 4.3 GB, even on a CPU machine.
#
# With --rechub it also installs torch-rechub (pinned, for `bench-perf
# rechub`) into the same environment, marked with .complete-rechub.
#
#   scripts/setup-perf-python.sh            install (once), print the interpreter path
#   scripts/setup-perf-python.sh --print    only print the path (exit 1 if not installed)
#   scripts/setup-perf-python.sh --rechub   as the first, plus torch-rechub==0.9.0
set -euo pipefail

RECHUB_VERSION="0.9.0"

TORCH_VERSION="${MTLBENCH_TORCH_VERSION:-2.11.0}"
CACHE="${MTLBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlbench}"
PYTHON="${PYTHON:-python3}"
dest="$CACHE/perf-python-torch-$TORCH_VERSION"

if [ "${1:-}" = "--rechub" ]; then
  "$0" >/dev/null
  if [ ! -f "$dest/.complete-rechub" ]; then
    echo "Installing torch-rechub==$RECHUB_VERSION into $dest (one time) ..." >&2
    # torch stays the pinned one: pip must not up- or downgrade it.
    "$dest/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
      "torch-rechub==$RECHUB_VERSION" "torch==$TORCH_VERSION" >&2
    "$dest/venv/bin/python" -c "import torch, torch_rechub.trainers; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" >&2
    touch "$dest/.complete-rechub"
  fi
  echo "$dest/venv/bin/python"
  exit 0
fi
if [ -f "$dest/.complete" ]; then
  echo "$dest/venv/bin/python"
  exit 0
fi
if [ "${1:-}" = "--print" ]; then
  echo "error: the perf Python environment is not installed ($dest); run make perf-setup" >&2
  exit 1
fi

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; it is needed to create the perf environment" >&2; exit 1; }
mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.partial-perf-python-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "Installing torch==$TORCH_VERSION (CUDA wheel set, about 4.3 GB), numpy and scikit-learn into $dest (one time) ..." >&2
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  "torch==$TORCH_VERSION" numpy scikit-learn >&2
rm -rf "$dest"
# Only venv/bin/python is used (python -m ...), which finds its environment
# from pyvenv.cfg next to it, so the finished venv can be moved into place.
mv "$tmp" "$dest"
trap - EXIT
"$dest/venv/bin/python" -c "import torch, numpy, sklearn; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" >&2
touch "$dest/.complete"
echo "$dest/venv/bin/python"
