#!/usr/bin/env bash
# Build + install fastsam_rt, then build cpp/examples against the INSTALLED CMake package and run it.
#
# Usage: cpp/scripts/check_installed_package.sh [WORK_DIR]
# Env:   FASTSAM_BUILD_DIR (optional: an existing configured Release build of the repo to install from instead of
#        building again), PYTHON (interpreter with onnxruntime; default: python3), FASTSAM_RT_MODEL_DIR (optional: a sam-export
#        directory; when set the app segments a test image with it), FASTSAM_TEST_IMAGE (image for that run).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-$(mktemp -d)}"
python="${PYTHON:-python3}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

build="${FASTSAM_BUILD_DIR:-$work/build}"
if [[ -z "${FASTSAM_BUILD_DIR:-}" ]]; then
    cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFASTSAM_BUILD_TESTS=OFF \
          -DPython_EXECUTABLE="$(command -v "$python")"
fi
cmake --build "$build" -j2
cmake --install "$build" --prefix "$work/prefix"

cmake -S "$repo/cpp/examples" -B "$work/example" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix"
cmake --build "$work/example" -j2
"$work/example/fastsam_segment" --help

if [[ -n "${FASTSAM_RT_MODEL_DIR:-}" ]]; then
    image="${FASTSAM_TEST_IMAGE:-$repo/../shared/fixtures/official_vit_t/groceries.jpg}"
    "$work/example/fastsam_segment" --model "$FASTSAM_RT_MODEL_DIR" --image "$image" --output "$work/out" \
        --point 224,166 --threads 2
    test -s "$work/out.png" && test -s "$work/out.json"
    "$python" -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['masks']) == 1, d" "$work/out.json"
fi
echo "installed-package check: OK ($work)"
