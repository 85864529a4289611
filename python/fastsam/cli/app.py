"""``sam-app``: the interactive Gradio app (``pip install 'fastsam[app]'``) on an exported model (fastsam_rt) or a
checkpoint (PyTorch)."""
from __future__ import annotations

from pathlib import Path

import click

from .params import checkpoint_option, model_type_option, version_option


def _default_model(output_dir: str) -> dict:
    """With no model given: the demo run's export (runtime), else fastsam's base demo checkpoint (PyTorch)."""
    from ..demo_model import default_demo_checkpoint, demo_export_dir

    export = demo_export_dir(output_dir)
    if (export / "manifest.json").is_file():
        return {"model_dir": export, "description": f"the demo's finetuned model, exported in {export}"}
    path, which = default_demo_checkpoint(output_dir)
    return {"checkpoint": path, "description": which}


def _loader(model_type, threads):
    """load_model(path) for the app's "load another model" box: a folder is an export, a file a checkpoint."""
    from ..backends import load_backend

    def load(path: str):
        p = Path(path).expanduser()
        if p.is_dir():
            return load_backend("runtime", model_dir=p, threads=threads)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: give an exported model folder or a .pth checkpoint")
        return load_backend("torch", checkpoint=p, model_type=model_type)

    return load


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Exported model directory (sam-export, sam-train --demo): served by fastsam_rt, without PyTorch.")
@checkpoint_option
@model_type_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="Runtime backend: ONNX Runtime threads per operator (0 = its default).")
@click.option("--cache-images", type=click.IntRange(1, 64), default=4, show_default=True,
              help="How many images keep their embedding (one predictor each), least recently used dropped first.")
@click.option("--demo-output-dir", default="runs", show_default=True,
              help="Where `sam-train --demo` wrote its run (the default model comes from there).")
@version_option
def main(model_dir, checkpoint, model_type, host, port, threads, cache_images, demo_output_dir):
    """Try a SAM model in the browser: click points and boxes, segment everything, download masks.

    With --model-dir the app runs on the C++ runtime (fastsam_rt); with --checkpoint on PyTorch. With
    neither it loads the demo's model: the export of `sam-train --demo` if it has run, else fastsam's base
    demo checkpoint. The page says which weights are loaded.

    \b
    Examples:
      sam-app
      sam-app --model-dir runs/demo/finetune/export
      sam-app --checkpoint mobile_sam.pt --model-type vit_t --port 7861
    """
    from ..backends import ModelLoadError, load_backend

    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise click.ClickException(f"sam-app needs Gradio ({err}): pip install 'fastsam[app]'") from err
    if model_dir is not None and checkpoint is not None:
        raise click.UsageError("give --model-dir (runtime) or --checkpoint (PyTorch), not both")
    source = {"model_dir": model_dir, "checkpoint": checkpoint, "description": None}
    if model_dir is None and checkpoint is None:
        source = _default_model(demo_output_dir)
    try:
        backend = load_backend(None, model_type=model_type, threads=threads, **source)
    except ModelLoadError as err:
        raise click.ClickException(str(err)) from err
    app, session = build(backend, cache_images=cache_images, load_model=_loader(model_type, threads))
    click.echo(session.model_text)
    click.echo(f"serving on http://{host}:{port} (Ctrl-C stops)")
    try:
        app.launch(server_name=host, server_port=port, show_error=True, quiet=True, ssr_mode=False,
                   footer_links=[])
    except OSError as err:  # port taken, address not available
        raise click.ClickException(f"cannot serve on {host}:{port}: {str(err).splitlines()[0]} (try --port)") from err


def build(backend, *, cache_images: int = 4, load_model=None):
    """(gr.Blocks app, AppSession) on ``backend``, with the sample image written beside the session's files."""
    from ..app.session import AppSession
    from ..app.ui import build_app
    from ..demo_image import make_demo_image
    from ..image_io import write_png

    session = AppSession(backend, cache_images=cache_images)
    sample = write_png(session.out_dir / "sample.png", make_demo_image())
    return build_app(session, sample, load_model=load_model), session
