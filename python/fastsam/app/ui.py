"""The Gradio layout of sam-app: an image to click on (points, boxes), a segment-everything tab, downloads.

Every handler turns a failure into ``gr.Error`` with a one-line message, so the browser shows a message and
never a traceback or a spinner that does not stop. Element ids (``elem_id``) are what the browser test clicks.
"""
from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path

import gradio as gr  # module level: Gradio resolves the handlers' gr.SelectData annotation from here

from ..segment_image import EverythingSettings
from .session import CLICK_MODES, AppSession, Clicks

HELP = ("Upload an image or use the sample, then click on it: foreground and background points, or a box "
        "by two opposite corners. The best of SAM's three candidate masks is shown after each click.")


def _ui_errors(fn):
    """Bad input and model failures become one-line gr.Error messages; anything else too, logged in full here."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError, RuntimeError, FileNotFoundError) as err:
            raise gr.Error(_one_line(err), print_exception=False) from err
        except Exception as err:  # noqa: BLE001  (the UI must answer; the log keeps the traceback)
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"unexpected error: {type(err).__name__}: {_one_line(err)}", print_exception=False) from err

    return wrapper


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def build_app(session: AppSession, sample_path: Path, load_model=None):
    """The gr.Blocks app on ``session``.

    Arguments:
      sample_path: the bundled sample image (a PNG file) that "Use the sample image" puts in the upload box.
      load_model: callable(path) -> backend for the "load another model" box (None hides it).
    """
    from ..image_io import read_rgb

    state = {"session": session}  # replaced as a whole when the user loads another model

    @_ui_errors
    def on_image(path):
        if path is None:
            return None, None, Clicks(), None, "no image"
        image = read_rgb(path)
        status = state["session"].embed(image)
        return image, image, Clicks(), None, status

    @_ui_errors
    def on_click(image, clicks, mode, evt: gr.SelectData):
        if image is None:
            raise ValueError("no image yet: upload one or press 'Use the sample image'")
        x, y = (float(v) for v in evt.index)
        clicks = clicks.add(x, y, mode)
        result = state["session"].predict(image, clicks)
        return result.overlay, clicks, result, f"{result.summary} — last click ({x:.0f}, {y:.0f}), {mode}"

    @_ui_errors
    def on_undo(image):
        return image, Clicks(), None, "prompt cleared"

    @_ui_errors
    def on_everything(image, pps, iou, stability, progress=gr.Progress()):
        settings = EverythingSettings(int(pps), float(iou), float(stability))
        result = state["session"].everything(image, settings, progress=lambda f, d: progress(f, desc=d))
        return result.overlay, result, result.summary

    @_ui_errors
    def on_download(image, result, fmt, stem):
        png, js = state["session"].downloads(image, result, fmt, stem)
        return [str(png), str(js)]

    @_ui_errors
    def on_load_model(path):
        path = (path or "").strip()
        if not path:
            raise ValueError("type the path of an exported model folder (or a .pth checkpoint) first")
        backend = load_model(path)
        state["session"] = AppSession(backend, cache_images=session.cache.capacity, out_dir=session.out_dir)
        return state["session"].model_text, f"loaded {path}"

    with gr.Blocks(title="fastsam — Segment Anything", analytics_enabled=False) as app:
        gr.Markdown(f"## fastsam — Segment Anything\n{HELP}")
        model_md = gr.Markdown(session.model_text, elem_id="model")
        image_state, clicks_state, result_state = gr.State(None), gr.State(Clicks()), gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], elem_id="upload")
                sample_btn = gr.Button("Use the sample image", elem_id="sample")
                if load_model is not None:
                    with gr.Accordion("Load another model", open=False):
                        model_path = gr.Textbox(label="Exported model folder or .pth checkpoint", elem_id="model_path")
                        load_btn = gr.Button("Load", elem_id="load_model")
            with gr.Column(scale=2):
                canvas = gr.Image(label="Click on the image", type="numpy", format="png", interactive=False,
                                  elem_id="canvas")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        with gr.Tabs():
            with gr.Tab("Points and boxes", id="prompt", elem_id="tab_prompt"):
                with gr.Row():
                    mode = gr.Radio(list(CLICK_MODES), value=CLICK_MODES[0], label="A click adds", elem_id="mode")
                    undo = gr.Button("Clear the prompt", elem_id="clear")
            with gr.Tab("Segment everything", id="everything", elem_id="tab_everything"):
                with gr.Row():
                    pps = gr.Slider(4, 64, value=32, step=1, label="points per side", elem_id="pps")
                    iou = gr.Slider(0, 1, value=0.88, step=0.01, label="predicted IoU threshold", elem_id="iou")
                    stab = gr.Slider(0, 1, value=0.95, step=0.01, label="stability score threshold", elem_id="stab")
                run_all = gr.Button("Segment everything", variant="primary", elem_id="run_everything")
        with gr.Row():
            fmt = gr.Radio(["rle", "polygons"], value="rle", label="COCO JSON masks as", elem_id="format")
            download = gr.Button("Prepare downloads (PNG + COCO JSON)", elem_id="download")
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, height=120, elem_id="files")

        upload.change(on_image, upload, [image_state, canvas, clicks_state, result_state, status])
        sample_btn.click(lambda: str(sample_path), None, upload)
        canvas.select(on_click, [image_state, clicks_state, mode], [canvas, clicks_state, result_state, status])
        undo.click(on_undo, image_state, [canvas, clicks_state, result_state, status])
        run_all.click(on_everything, [image_state, pps, iou, stab], [canvas, result_state, status])
        download.click(on_download, [image_state, result_state, fmt, gr.State("sam_app")], files)
        if load_model is not None:
            load_btn.click(on_load_model, model_path, [model_md, status])
    return app
