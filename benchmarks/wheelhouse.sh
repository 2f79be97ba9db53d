#!/usr/bin/env bash
# Download, where pip has network, the wheels a GPU node without network needs to run neuroexec's tests
# and GPU benchmarks from a checkout: what neuroexec needs beyond a typical CUDA PyTorch image (torch,
# triton, numpy, pandas, matplotlib, tensorboard, scipy, pytest, pytest-benchmark), plus MONAI and Captum
# (the `bench` peers). TorchIO needs SimpleITK (~50 MB): WITH_TORCHIO=1 adds it.
#
#   benchmarks/wheelhouse.sh [DEST] [PYTHON_VERSION]      # defaults: .whl 3.12
#   then, on the GPU node: benchmarks/run_offline_gpu.sh [DEST]
set -euo pipefail
dest=${1:-.whl}
pyver=${2:-3.12}
packages=(nibabel jsonschema jsonschema-specifications referencing rpds-py monai captum)
if [[ ${WITH_TORCHIO:-0} == 1 ]]; then
    packages+=(torchio simpleitk deprecated)
fi
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
    "${platforms[@]}" -d "$dest" "${packages[@]}"
du -sh "$dest"
