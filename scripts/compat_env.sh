#!/usr/bin/env bash
# The fast suite in a fresh venv against one resolution of fairvlm's dependencies:
#   min     every direct dependency at its pyproject.toml floor (scripts/floors.py)
#   newest  the newest releases (nothing pinned but the CPU torch build)
#   lock    requirements/lock.txt
# Usage: scripts/compat_env.sh min|newest|lock   (make test-min / test-newest / lock)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:?usage: compat_env.sh min|newest|lock}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-2.13.0}"  # the CPU build this machine serves; a bare torch pulls CUDA
venv=".venv-$which"
constraints="$venv/constraints.txt"

rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
case "$which" in
  min) "$PYTHON" scripts/floors.py > "$constraints" ;;
  newest) echo "torch==$TORCH" > "$constraints" ;;
  lock) cp requirements/lock.txt "$constraints" ;;
  *) echo "compat_env.sh: which=$which is not valid: use min, newest or lock" >&2; exit 2 ;;
esac
"$venv/bin/pip" install -q -c "$constraints" torch
"$venv/bin/pip" install -q -c "$constraints" -e '.[dev]'

versions=$("$venv/bin/python" - <<'PY'
from importlib.metadata import version
names = ("torch", "transformers", "peft", "accelerate", "datasets", "tokenizers", "huggingface-hub")
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
echo "compat [$which]: $versions"
if ! HF_HUB_OFFLINE=1 "$venv/bin/python" -m pytest -p no:cacheprovider; then
  echo "compat [$which]: the fast suite FAILED with $versions (all: $venv/bin/pip freeze)" >&2
  exit 1
fi
echo "compat [$which]: the fast suite passed with $versions"
