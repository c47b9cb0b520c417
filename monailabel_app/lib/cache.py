# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The server's cache of prepared images (windows sampled and encoded once), least recently used out first."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable

from scripts.inference import PreparedImage

__all__ = ["PreparedCache", "prepared_megabytes"]

logger = logging.getLogger(__name__)


def prepared_megabytes(prepared: PreparedImage) -> float:
    """Memory held by a prepared image: the original image and its window embeddings (MB)."""
    tensors = [prepared.image] + prepared.embeddings
    return sum(t.element_size() * t.nelement() for t in tensors) / 1e6


class PreparedCache:
    """Prepared images by file, bounded by a number of images and by megabytes; evictions are logged.

    An entry is keyed by the file's real path and valid while its size and modification time are unchanged (an
    image replaced on disk is prepared again). The image in use is never evicted, even when it alone exceeds the
    bound in megabytes.

    Args:
        prepare: makes the prepared image of a path (loads, resamples; encodes nothing yet).
        max_images: the most images kept (at least 1).
        max_mb: the most megabytes kept (``0``: no bound in megabytes).
        on_evict: called with the path of each image dropped (the app drops the sessions on it).
    """

    def __init__(
        self,
        prepare: Callable[[str], PreparedImage],
        max_images: int = 8,
        max_mb: float = 0.0,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        if max_images < 1:
            raise ValueError(f"the image cache must hold at least 1 image, got cache_images={max_images}.")
        if max_mb < 0:
            raise ValueError(f"cache_mb must be 0 (no bound) or positive, got {max_mb}.")
        self.prepare = prepare
        self.max_images = int(max_images)
        self.max_mb = float(max_mb)
        self.on_evict = on_evict
        self._entries: OrderedDict[str, tuple[tuple[int, int], PreparedImage]] = OrderedDict()
        self._evicted_encodes = 0  # encoder passes of images no longer cached, for encoder_calls
        bound = f"{self.max_mb:,.0f} MB" if self.max_mb else "no bound in MB"
        logger.info(f"image cache: at most {self.max_images} image(s) and {bound}; the least recently used go first")

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    @property
    def megabytes(self) -> float:
        """Memory held by the cached images (MB)."""
        return sum(prepared_megabytes(p) for _, p in self._entries.values())

    @property
    def encoder_calls(self) -> int:
        """Encoder passes since the server started (each window of each prepared image is encoded once)."""
        return self._evicted_encodes + sum(p.num_encoded for _, p in self._entries.values())

    def get(self, path: str) -> tuple[PreparedImage, bool]:
        """The prepared image of ``path`` and whether it was prepared now (``False``: from the cache).

        Args:
            path: the image file's real path.
        """
        stat = os.stat(path)
        signature = (stat.st_size, stat.st_mtime_ns)
        entry = self._entries.get(path)
        if entry is not None and entry[0] == signature:
            self._entries.move_to_end(path)
            return entry[1], False
        if entry is not None:
            logger.info(f"image cache: {path} changed on disk, preparing it again")
            self._drop(path)
        prepared = self.prepare(path)
        self._entries[path] = (signature, prepared)
        self.shrink()
        return prepared, True

    def shrink(self) -> None:
        """Evict least recently used images until both bounds hold (the most recent one always stays)."""
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_images or (self.max_mb and self.megabytes > self.max_mb)
        ):
            path = next(iter(self._entries))
            megabytes = prepared_megabytes(self._entries[path][1])
            self._drop(path)
            logger.info(
                f"image cache: evicted {path} ({megabytes:.1f} MB), least recently used; {len(self._entries)} "
                f"image(s), {self.megabytes:.1f} MB cached (bounds: {self.max_images} images"
                + (f", {self.max_mb:g} MB)" if self.max_mb else ")")
            )

    def _drop(self, path: str) -> None:
        _, prepared = self._entries.pop(path)
        self._evicted_encodes += prepared.num_encoded
        if self.on_evict is not None:
            self.on_evict(path)
