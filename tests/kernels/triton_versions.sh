#!/usr/bin/env bash
# Run the kernel tests against other Triton releases, each installed privately beside the project's venv:
#   tests/kernels/triton_versions.sh 3.0.0 3.6.0 3.9.0
# Each version runs tests/kernels and tests/test_ops.py: the compile-to-cubin checks for sm_90 and sm_80
# (test_gpu_compile.py) and, where that Triton's interpreter can run the kernels, the interpreter tests
# (elsewhere they skip, naming the reason). One summary line per version; logs in $WORK (default
# /tmp/neuroexec-triton-versions).
set -uo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-.venv/bin/python}
work=${WORK:-/tmp/neuroexec-triton-versions}
mkdir -p "$work"
[ $# -gt 0 ] || { echo "usage: $0 VERSION [VERSION ...]" >&2; exit 2; }
status=0
for version in "$@"; do
  site="$work/triton-$version"
  if [ ! -d "$site/triton" ]; then
    "$py" -m pip install -q --no-deps --target "$site" "triton==$version" || { echo "$version: install failed"; status=1; continue; }
  fi
  log="$work/triton-$version.log"
  PYTHONPATH="$site" "$py" -m pytest -p no:cacheprovider -o addopts="" -q -rs tests/kernels tests/test_ops.py >"$log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  skipped=$(grep -E "^SKIPPED .*interpreter" "$log" | sed -E 's/^SKIPPED \[([0-9]+)\].*/\1/' | awk '{n += $1} END {print n + 0}')
  echo "$version: $(tail -n 1 "$log") ($skipped skipped: the interpreter cannot run; log $log)"
done
exit $status
