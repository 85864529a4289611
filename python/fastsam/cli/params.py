"""click parameter types and shared options for fastsam commands."""
from __future__ import annotations

import click

from ..model_types import MODEL_TYPES


class PointType(click.ParamType):
    """A prompt point ``x,y`` (foreground) or ``x,y,label`` with label 1 (foreground) or 0 (background)."""

    name = "x,y[,label]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        if len(parts) not in (2, 3):
            self.fail(f"expected 'x,y' or 'x,y,label', got {value!r}", param, ctx)
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            self.fail(f"point coordinates must be numbers, got {value!r}", param, ctx)
        label = 1
        if len(parts) == 3:
            if parts[2].strip() not in ("0", "1"):
                self.fail(f"point label must be 1 (foreground) or 0 (background), got {parts[2]!r}", param, ctx)
            label = int(parts[2])
        return (x, y, label)


class BoxType(click.ParamType):
    """A box ``x0,y0,x1,y1`` in image pixels with x1 >= x0 and y1 >= y0."""

    name = "x0,y0,x1,y1"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        if len(parts) != 4:
            self.fail(f"expected four numbers 'x0,y0,x1,y1', got {value!r}", param, ctx)
        try:
            x0, y0, x1, y1 = (float(p) for p in parts)
        except ValueError:
            self.fail(f"box coordinates must be numbers, got {value!r}", param, ctx)
        if x1 < x0 or y1 < y0:
            self.fail(f"box needs x1 >= x0 and y1 >= y0, got {value!r}", param, ctx)
        return (x0, y0, x1, y1)


model_type_option = click.option(
    "--model-type",
    type=click.Choice(MODEL_TYPES),
    default=None,
    help="Architecture of the checkpoint (vit_t = MobileSAM TinyViT). Default: the one a fastsam-trained "
         "checkpoint stores, else vit_t.",
)

checkpoint_option = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Official (mobile_sam.pt, sam_vit_*.pth) or fastsam-trained checkpoint. Without it the model has random weights.",
)

# Every command prints the installed package's version the same way.
version_option = click.version_option(package_name="fastsam")
