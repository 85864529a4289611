"""Overlays: mask fill and outline, title and legend strips, and the old call still giving an image-sized result."""
from __future__ import annotations

import numpy as np

from fastsam.visualize import mask_colors, overlay_masks


def _scene():
    image = np.full((64, 80, 3), (200, 60, 60), np.uint8)  # a solid shape the mask sits on
    mask = np.zeros((64, 80), bool)
    mask[20:40, 10:50] = True
    return image, mask


def test_mask_is_filled_and_outlined_darker_with_a_white_ring():
    image, mask = _scene()
    out = overlay_masks(image, [mask], alpha=0.5)
    color = mask_colors(1)[0].astype(float)
    assert out.shape == image.shape  # no title or legend: same size as before these options existed
    assert np.allclose(out[30, 30], 0.5 * image[30, 30] + 0.5 * color, atol=1)  # inside: blended fill
    assert np.allclose(out[20, 30], np.round(0.75 * color), atol=1)  # top edge: darker mask colour
    assert (out[19, 30] == 255).all() and (out[40, 30] == 255).all()  # 1 px white ring just outside
    assert (out[41, 30] == image[41, 30]).all()
    assert (out[10, 30] == image[10, 30]).all()  # away from the mask: untouched
    plain = overlay_masks(image, [mask], alpha=0.5, outline=False)
    assert np.allclose(plain[20, 30], 0.5 * image[20, 30] + 0.5 * color, atol=1)


def test_title_and_legend_add_strips_with_the_mask_colour_swatch():
    image, mask = _scene()
    out = overlay_masks(image, [mask, ~mask], title="prediction", labels=["mask 0: IoU 0.91", "mask 1: IoU 0.50"])
    bare = overlay_masks(image, [mask, ~mask])
    assert out.shape[1] == image.shape[1] and out.shape[0] > image.shape[0]
    top = out.shape[0] - image.shape[0]
    # the image sits between the title strip and the legend strip, unchanged by them
    offsets = [k for k in range(top + 1) if np.array_equal(out[k:k + image.shape[0]], bare)]
    assert offsets and 0 < offsets[0] < top
    legend = out[offsets[0] + image.shape[0]:]
    for color in mask_colors(2):
        assert (legend.reshape(-1, 3) == color).all(1).any()  # one swatch per mask, in its colour
