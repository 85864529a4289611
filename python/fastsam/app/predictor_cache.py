"""A bounded cache of predictors that each hold one image's embedding, so every image is encoded once."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np


def image_key(image: np.ndarray) -> str:
    """Identity of an image's pixels (shape and bytes), as the cache key."""
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(str(image.shape).encode())
    return digest.hexdigest()


class PredictorCache:
    """Up to ``capacity`` predictors, least recently used first out; an evicted one is reused for the next image.

    The runtime's Predictor cannot take an embedding from outside, so the cache keeps whole predictors (ONNX
    Runtime sessions and one embedding each); ``capacity`` bounds that memory.
    """

    def __init__(self, new_predictor: Callable[[], Any], capacity: int = 4) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1 image, got {capacity}")
        self._new = new_predictor
        self.capacity = capacity
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.encodes = 0  # how many times an image was encoded (tests read it)
        # Gradio runs handlers in threads; one predictor must not take two images at once.
        self.lock = threading.RLock()

    def get(self, image: np.ndarray) -> Any:
        """A predictor holding ``image``'s embedding (encoded now unless cached). Call under ``self.lock``."""
        key = image_key(image)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        predictor = self._items.popitem(last=False)[1] if len(self._items) >= self.capacity else self._new()
        predictor.set_image(image)  # on failure the popped predictor is dropped; the next miss makes a new one
        self.encodes += 1
        self._items[key] = predictor
        return predictor

    def __contains__(self, image: np.ndarray) -> bool:
        return image_key(image) in self._items
