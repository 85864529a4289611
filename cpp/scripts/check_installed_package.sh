#!/usr/bin/env bash
# Build + install fastsam_rt, then build cpp/examples against the INSTALLED CMake package and run it on a model:
# the app segments a generated PNG with a point prompt, and its mask must equal what fastsam_rt's Python
# Predictor gives for the same image, point and model (same library underneath: IoU >= 0.99 allows only for
# PNG decoding differences, which there should be none of).
#
# Usage: cpp/scripts/check_installed_package.sh [WORK_DIR]
# Env:   FASTSAM_BUILD_DIR (optional: an existing configured Release build of the repo to install from instead of
#        building again), PYTHON (interpreter with fastsam and fastsam_rt; default: python3), FASTSAM_RT_MODEL_DIR
#        (optional: a sam-export directory; default: the standalone model, exported here by
#        tests/standalone_model.py).
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
app="$work/example/fastsam_segment"
"$app" --help >/dev/null

model="${FASTSAM_RT_MODEL_DIR:-}"
if [[ -z "$model" ]]; then
    model="$work/standalone_model"
    "$python" "$repo/tests/standalone_model.py" "$model"
fi

# A generated scene (objects on a textured background), 180 x 240, as PNG: lossless, so the app and Python see
# the same pixels.
image="$work/scene.png"
"$python" - "$image" <<'PY'
import sys

import numpy as np
from PIL import Image

from fastsam.data.synthetic import make_scene

image, _ = make_scene(np.random.default_rng(3), 180, 240, num_objects=3)
Image.fromarray(image).save(sys.argv[1])
PY

"$app" --model "$model" --image "$image" --output "$work/out" --point 120,80 --threads 2
test -s "$work/out.png" && test -s "$work/out.json"

"$python" - "$model" "$image" "$work/out.json" "$work/out.png" <<'PY'
import json
import sys

import fastsam_rt
import numpy as np
from PIL import Image

model, image_path, json_path, png_path = sys.argv[1:]
image = np.asarray(Image.open(image_path).convert("RGB"))
out = json.load(open(json_path))
assert (out["height"], out["width"]) == image.shape[:2], out
assert len(out["masks"]) == 1, f"one point prompt gives one mask, got {len(out['masks'])}"
overlay = np.asarray(Image.open(png_path).convert("RGB"))
assert overlay.shape == image.shape, f"overlay {overlay.shape} != image {image.shape}"
assert not np.array_equal(overlay, image), "the overlay shows no mask"

# The app keeps the best of the 3 masks; the Python binding of the same library must give the same one.
predictor = fastsam_rt.Predictor(model, intra_op_threads=2)
predictor.set_image(image)
masks, scores, _ = predictor.predict(point_coords=[[120, 80]], point_labels=[1])
expected = masks[int(np.argmax(scores))]
got = fastsam_rt.decode_coco_rle(out["masks"][0]["segmentation"]).astype(bool)
assert got.any(), "the app's mask is empty"
iou = np.logical_and(got, expected).sum() / np.logical_or(got, expected).sum()
assert iou >= 0.99, f"app mask IoU {iou:.4f} with the Python Predictor's best mask"
assert abs(out["masks"][0]["score"] - float(scores.max())) < 1e-4, (out["masks"][0]["score"], scores)
print(f"example app: mask of {int(got.sum())} px, IoU {iou:.4f} with fastsam_rt.Predictor")
PY
echo "installed-package check: OK ($work)"
