"""sam-app in headless Chromium on the standalone model, without PyTorch: sample image, one click, overlay and score, an error
message before any image, segment everything; screenshots in the test's tmp dir. Skips only where no Chromium
is installed (`.ci/setup` installs Debian's `chromium`)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import app_browser


@pytest.fixture(scope="module")
def chromium() -> str:
    path = app_browser.find_chromium()
    if path is None:
        pytest.skip("no Chromium on PATH (`apt-get install chromium`; .ci/setup installs it where apt can)")
    return path


def test_click_shows_a_mask_overlay_and_everything_runs(chromium, standalone_dir, tmp_path, hidden_torch_path):
    """The app runs on fastsam_rt in a process where `import torch` fails."""
    import io

    import fastsam_rt
    from PIL import Image

    from fastsam.demo_image import make_demo_image

    import time

    port = app_browser.free_port()
    start = time.monotonic()
    proc = app_browser.start_app(["--model-dir", str(standalone_dir), "--threads", "1"], port, tmp_path / "app.log",
                                 pythonpath_first=hidden_torch_path)
    started = time.monotonic() - start
    try:
        seen = app_browser.drive(f"http://127.0.0.1:{port}/", tmp_path / "shots", chromium, everything=(4, 0.0, 0.0))
    finally:
        app_browser.stop_app(proc)
    print(f"sam-app started in {started:.1f} s; browser steps (s): {seen.seconds}")  # shown with -rP / on failure
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in seen.screenshots)

    score = float(re.search(r"best mask: predicted IoU (-?[\d.]+)", seen.prompt_status).group(1))
    sample = make_demo_image()
    predictor = fastsam_rt.Predictor(str(standalone_dir))
    predictor.set_image(sample)
    masks, scores, _ = predictor.predict(point_coords=[list(seen.click_xy)], point_labels=[1])
    best = int(np.argmax(scores))
    assert score == pytest.approx(float(scores[best]), abs=1e-3)
    mask = masks[best]

    before = np.asarray(Image.open(io.BytesIO(seen.before)).convert("RGB")).astype(int)
    after = np.asarray(Image.open(io.BytesIO(seen.after)).convert("RGB")).astype(int)
    assert np.array_equal(before, sample)  # the canvas showed the sample itself before the click
    changed = np.abs(after - before).max(axis=2) > 12
    # Outside the mask only its outline ring and the click marker may change.
    near = mask.copy()
    for _ in range(3):
        near |= np.roll(near, 1, 0) | np.roll(near, -1, 0) | np.roll(near, 1, 1) | np.roll(near, -1, 1)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    near |= (xx - seen.click_xy[0]) ** 2 + (yy - seen.click_xy[1]) ** 2 < 15**2
    assert mask.sum() > 0 and changed[mask].mean() > 0.8, "no mask overlay where the mask is"
    assert changed[~near].mean() < 0.02, "pixels changed away from the mask"

    count = int(re.search(r"(\d+) masks in", seen.everything_status).group(1))
    assert count >= 1, seen.everything_status
