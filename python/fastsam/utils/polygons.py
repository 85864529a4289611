"""Masks <-> COCO polygons (no OpenCV): traced with contourpy, simplified with Douglas-Peucker.

COCO polygons have no holes: pycocotools rasterises each polygon with the even-odd rule and unions the
polygons of one annotation. To keep a hole we join it to its outline by a zero-width cut (the same segment
walked there and back), so the outline and its holes form one ring whose even-odd fill leaves the holes empty.
Coordinates are pixel edges: pixel (x, y) covers [x, x + 1] x [y, y + 1], as pycocotools reads them.
"""
from __future__ import annotations

import numpy as np


def mask_to_polygons(mask: np.ndarray, tolerance: float = 1.0, keep_holes: bool = True) -> list[list[float]]:
    """COCO polygons of a binary mask.

    Arguments:
      mask: (H, W) bool or 0/1 array.
      tolerance: Douglas-Peucker tolerance in pixels (0 keeps every traced vertex); larger gives fewer points.
      keep_holes: join holes to their outline (see the module docstring); False fills them.

    Returns:
      one flat list [x0, y0, x1, y1, ...] per connected part (at least 3 points each), in pixel-edge coordinates.
    """
    import contourpy

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    height, width = mask.shape
    # Padding closes parts that touch the border; +0.5 - 1 moves pixel centres (after padding) to pixel edges.
    padded = np.pad(mask.astype(np.float64), 1)
    points, offsets = contourpy.contour_generator(z=padded, fill_type="OuterOffset").filled(0.5, 1.5)
    polygons = []
    for xy, offs in zip(points, offsets):
        rings = [_simplify_ring(xy[a:b - 1] - 0.5, tolerance) for a, b in zip(offs[:-1], offs[1:])]
        outer, holes = rings[0], [r for r in rings[1:] if len(r) >= 3]
        if len(outer) < 3:
            continue
        ring = _bridge(outer, holes) if keep_holes and holes else outer
        ring = np.clip(ring, 0.0, [width, height])
        polygons.append([round(float(v), 2) for v in ring.reshape(-1)])
    return polygons


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of COCO polygons, rasterised by pycocotools (union of the polygons)."""
    from pycocotools import mask as mask_utils

    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _simplify_ring(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (last point not repeated): split at the vertex farthest from the first."""
    if tolerance == 0 or len(ring) <= 4:
        return ring
    # A part only a few pixels across would lose most of its area to a full-tolerance cut; scale it down there.
    tolerance = min(tolerance, 0.1 * float(np.min(ring.max(axis=0) - ring.min(axis=0))))
    far = int(np.argmax(np.hypot(*(ring - ring[0]).T)))
    first = _simplify_line(ring[: far + 1], tolerance)
    second = _simplify_line(np.concatenate([ring[far:], ring[:1]]), tolerance)
    return np.concatenate([first[:-1], second[:-1]])


def _simplify_line(line: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on an open polyline, iteratively (a long outline would overflow recursion)."""
    keep = np.zeros(len(line), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(line) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        a, b = line[start], line[end]
        inner = line[start + 1 : end]
        ab = b - a
        length = float(np.hypot(*ab))
        if length == 0:
            dist = np.hypot(*(inner - a).T)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / length
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            mid = start + 1 + k
            keep[mid] = True
            stack += [(start, mid), (mid, end)]
    return line[keep]


def _bridge(outer: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """One ring: the outline with each hole spliced in at its nearest vertex, entered and left along one cut."""
    ring = outer
    for hole in holes:
        dist = np.hypot(ring[:, None, 0] - hole[None, :, 0], ring[:, None, 1] - hole[None, :, 1])
        i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
        hole_loop = np.concatenate([hole[j:], hole[: j + 1]])  # starts and ends at the joined vertex
        ring = np.concatenate([ring[: i + 1], hole_loop, ring[i:]])
    return ring
