"""Drives sam-app in headless Chromium (Debian's `chromium`, through Playwright's `executable_path`): used by
tests/test_app_browser.py and, with the same steps, to make the README's screenshot:

    python tests/app_browser.py OUT.png [sam-app options...]     # e.g. --model-dir runs/demo/finetune/export

Playwright's own browser download is not used (it needs the network); the system Chromium is found on PATH.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a system Chromium, or None ($FASTSAM_CHROMIUM overrides)."""
    if os.environ.get("FASTSAM_CHROMIUM"):
        return os.environ["FASTSAM_CHROMIUM"]
    return next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(args: list[str], port: int, log_path: Path, timeout: float = 120.0,
              pythonpath_first: Path | None = None) -> subprocess.Popen:
    """sam-app in a child process on 127.0.0.1:port; returns once the page answers (the log says why if not).
    ``pythonpath_first`` goes before the repository's python/ on the child's PYTHONPATH."""
    paths = [str(p) for p in (pythonpath_first, REPO / "python") if p] + [os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-c", "from fastsam.cli.app import main; main()", *args,
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sam-app exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"sam-app did not answer within {timeout:.0f} s:\n{log_path.read_text()}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Session:
    """What the drive saw: status lines, the click in image pixels and the canvas images before/after."""

    prompt_status: str
    everything_status: str
    click_xy: tuple[float, float]
    before: bytes
    after: bytes
    screenshots: list[Path]
    seconds: dict[str, float]


def _canvas_png(page) -> bytes:
    src = page.locator("#canvas img").first.get_attribute("src")
    return page.request.get(src).body() if not src.startswith("data:") else _data_url(src)


def _data_url(src: str) -> bytes:
    import base64

    return base64.b64decode(src.split(",", 1)[1])


def _status(page) -> str:
    return page.locator("#status textarea").input_value()


def _wait_status(page, contains: str, timeout_ms: int) -> str:
    page.wait_for_function("([sel, s]) => (document.querySelector(sel)?.value || '').includes(s)",
                           arg=["#status textarea", contains], timeout=timeout_ms)
    return _status(page)


def drive(url: str, out_dir: Path, chromium: str, *, everything: tuple[int, float, float] = (8, 0.0, 0.0),
          click: tuple[float, float] = (0.5, 0.5), viewport=(1280, 900)) -> Session:
    """Open the app, use the sample image, click it at ``click`` (fractions of its width and height), wait for the
    overlay and score, then run segment everything with (points per side, IoU threshold, stability threshold);
    screenshots into out_dir."""
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    seconds, t0 = {}, time.monotonic()

    def lap(name):
        nonlocal t0
        seconds[name], t0 = round(time.monotonic() - t0, 2), time.monotonic()
    with sync_playwright() as pw:
        # Root in containers needs --no-sandbox; a small /dev/shm crashes Chromium's renderer without the other.
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#sample", timeout=60_000)
            lap("page")
            # Before any image: the everything button must answer with a message, not a spinner.
            page.get_by_role("tab", name="Segment everything").click()
            page.click("#run_everything")
            page.get_by_text("no image yet").first.wait_for(timeout=30_000)
            page.get_by_role("tab", name="Points and boxes").click()
            lap("error_message")
            page.click("#sample")
            _wait_status(page, "embedded", 60_000)
            page.wait_for_selector("#canvas img", timeout=30_000)
            before = _canvas_png(page)
            lap("sample_embedded")
            shots.append(out_dir / "1_sample.png")
            page.screenshot(path=shots[-1], full_page=True)

            box = page.locator("#canvas img").first.bounding_box()
            page.mouse.click(box["x"] + box["width"] * click[0], box["y"] + box["height"] * click[1])
            prompt_status = _wait_status(page, "predicted IoU", 60_000)
            after = _canvas_png(page)
            lap("click_overlay")
            shots.append(out_dir / "2_click.png")
            page.screenshot(path=shots[-1], full_page=True)

            page.get_by_role("tab", name="Segment everything").click()
            for elem, value in zip(("#pps", "#iou", "#stab"), everything):
                field = page.locator(f"{elem} input[type=number]")
                field.fill(str(value))
                field.press("Enter")
            page.click("#run_everything")
            everything_status = _wait_status(page, " masks in ", 120_000)
            lap("everything")
            shots.append(out_dir / "3_everything.png")
            page.screenshot(path=shots[-1], full_page=True)
        finally:
            browser.close()
    x, y = (float(v) for v in prompt_status.split("last click (")[1].split(")")[0].split(","))
    return Session(prompt_status, everything_status, (x, y), before, after, shots, seconds)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    chromium = find_chromium()
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    port = free_port()
    work = out.parent / (out.stem + "_shots")
    work.mkdir(parents=True, exist_ok=True)
    proc = start_app(argv[2:], port, work / "sam-app.log")
    try:
        # A click on the sample's pink triangle; the demo model's IoU head predicts ~0.5, hence those thresholds.
        session = drive(f"http://127.0.0.1:{port}/", work, chromium, everything=(16, 0.5, 0.7), click=(0.17, 0.45))
    finally:
        stop_app(proc)
    from PIL import Image

    # The prompt screenshot down to the status box, at 3/4 size and 128 colours so the committed PNG stays small.
    shot = Image.open(session.screenshots[1]).convert("RGB")
    shot = shot.crop((0, 0, shot.width, min(shot.height, 760)))
    shot = shot.resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.LANCZOS)
    shot.quantize(colors=128).save(out, optimize=True)
    print(f"{session.prompt_status}\n{session.everything_status}\nwrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
