#!/usr/bin/env bash
# Installs the Python side of the torchjd oracle (scripts/torchjd_oracle.py):
# torchjd, the independent implementation of the Jacobian-descent aggregators
# (UPGrad, MGDA, Aligned-MTL, IMTL-G, CAGrad, Nash-MTL, PCGrad, DualProj,
# ConFIG) that the Gramian-engine strategies are checked against. It goes into
# a per-user virtual environment keyed by the torchjd and torch versions, and
# the script prints its interpreter. Idempotent: a finished install is marked
# with .complete and reused. `make test` and CI never need it: the oracle's
# output is committed as fixtures under tests/fixtures/torchjd/.
#
# The PyPI Linux torch wheel is a CUDA build: `import torch` loads the CUDA
# wheel set (cuDNN, cuBLAS, NCCL, ...), about 4.3 GB, even on a CPU machine.
#
#   scripts/setup-oracle-python.sh            install (once), print the interpreter path
#   scripts/setup-oracle-python.sh --print    only print the path (exit 1 if not installed)
set -euo pipefail

TORCHJD_VERSION="${MTLBENCH_TORCHJD_VERSION:-0.18.0}"
TORCH_VERSION="${MTLBENCH_TORCH_VERSION:-2.11.0}"
CACHE="${MTLBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtlbench}"
PYTHON="${PYTHON:-python3}"
dest="$CACHE/oracle-python-torchjd-$TORCHJD_VERSION-torch-$TORCH_VERSION"

if [ -f "$dest/.complete" ]; then
  echo "$dest/venv/bin/python"
  exit 0
fi
if [ "${1:-}" = "--print" ]; then
  echo "error: the torchjd oracle Python environment is not installed ($dest); run scripts/setup-oracle-python.sh" >&2
  exit 1
fi

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; it is needed to create the oracle environment" >&2; exit 1; }
mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.partial-oracle-python-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "Installing torchjd==$TORCHJD_VERSION, torch==$TORCH_VERSION (CUDA wheel set, about 4.3 GB) and numpy into $dest (one time) ..." >&2
"$PYTHON" -m venv "$tmp/venv"
# The `full` extra brings the solvers some aggregators call: quadprog (the
# dual-cone projection of UPGrad and DualProj), cvxpy with ECOS and Clarabel
# (Nash-MTL, CAGrad) and scipy (FairGrad).
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  "torch==$TORCH_VERSION" "torchjd[full]==$TORCHJD_VERSION" numpy >&2
rm -rf "$dest"
# Only venv/bin/python is used, which finds its environment from pyvenv.cfg
# next to it, so the finished venv can be moved into place.
mv "$tmp" "$dest"
trap - EXIT
"$dest/venv/bin/python" -c "import torch, torchjd, numpy, quadprog, qpsolvers, cvxpy, ecos, scipy; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" >&2
touch "$dest/.complete"
echo "$dest/venv/bin/python"
