#!/usr/bin/env bash
# On a GPU node without network, from the repository root: install the wheels that
# benchmarks/wheelhouse.sh downloaded into a private folder, then run the kernel tests compiled on the
# GPU and the GPU benchmark suite. Logs and the ratio table go to OUT (default: gpu-results/).
#
#   benchmarks/run_offline_gpu.sh [WHEELS] [OUT]          # defaults: .whl gpu-results
set -uo pipefail
wheels=${1:-.whl}
out=${2:-gpu-results}
site=$(mktemp -d)
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl || exit 1
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, torch.version.cuda, triton.__version__)"
} | tee "$out/device.txt"
# The Triton kernels compiled on the GPU, against their float64 references (every backend: torch-cpu,
# torch-cuda, triton-cuda), then the ops dispatch.
python3 -m pytest tests/kernels tests/test_ops.py -q -p no:cacheprovider 2>&1 | tee "$out/kernel-tests.log"
tests=${PIPESTATUS[0]}
NEUROEXEC_BENCH_DEVICE=cuda python3 -m pytest benchmarks -o addopts="" --benchmark-enable --benchmark-only \
    -p no:cacheprovider 2>&1 | tee "$out/bench-gpu.log"
bench=${PIPESTATUS[0]}
cp .benchmarks/ratios.json "$out/" 2>/dev/null
echo "kernel tests exit $tests, benchmarks exit $bench; results in $out/"
exit $((tests || bench))
