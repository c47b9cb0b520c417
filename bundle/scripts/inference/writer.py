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
"""Saving outputs without half-written files and without silently overwriting earlier results."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from monai.data import MetaTensor
from monai.transforms import SaveImage
from monai.utils import MetaKeys

__all__ = ["AtomicSaveImage", "select_writer"]

logger = logging.getLogger(__name__)


class AtomicSaveImage(SaveImage):
    """``SaveImage`` that writes to a temporary name in the output folder and renames it when complete.

    Args:
        args: passed to ``SaveImage``.
        overwrite: replace an existing output; otherwise an existing file raises ``FileExistsError`` (callers
            check it with ``check_free`` before they do the work, the write checks again).
        kwargs: passed to ``SaveImage``.
    """

    def __init__(self, *args, overwrite: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.overwrite = overwrite

    def target(self, meta_data: dict | None) -> Path:
        """The final path of the output of an image with ``meta_data`` (the name ``SaveImage`` would give it).

        Args:
            meta_data: the image's metadata; ``filename_or_obj`` (the source path) is all the default naming reads.
        """
        return Path(self.folder_layout.filename(**self.fname_formatter(meta_data, self)))

    def check_free(self, meta_data: dict | None) -> None:
        """Refuse, before any work is done, to replace an existing output (unless ``overwrite``).

        Args:
            meta_data: the image's metadata.

        Raises:
            FileExistsError: the output exists and ``overwrite`` is off.
        """
        target = self.target(meta_data)
        if target.exists() and not self.overwrite:
            raise FileExistsError(f"{target} exists; remove it or pass --overwrite True to replace it.")

    def __call__(self, img: torch.Tensor, meta_data: dict | None = None, filename: str | None = None):
        meta_data = img.meta if isinstance(img, MetaTensor) else meta_data
        target = self.target(meta_data) if filename is None else Path(f"{filename}{self.output_ext}")
        if target.exists() and not self.overwrite:
            raise FileExistsError(f"{target} exists; remove it or pass --overwrite True to replace it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        stem = str(target)[: -len(self.output_ext)] if self.output_ext else str(target)
        partial = Path(stem).with_name(f".{Path(stem).name}.partial-{os.getpid()}")
        verbose = self.write_kwargs.get("verbose", True)
        self.write_kwargs["verbose"] = False  # the log names the final file, never the temporary one
        try:
            super().__call__(img, meta_data, filename=str(partial))
            os.replace(f"{partial}{self.output_ext}", target)
        finally:
            self.write_kwargs["verbose"] = verbose
            Path(f"{partial}{self.output_ext}").unlink(missing_ok=True)
        if verbose:
            logger.info(f"wrote {target}")
        if meta_data is not None:
            meta_data[MetaKeys.SAVED_TO] = str(target)
        return img


def select_writer(output_format: str, writers: Mapping[str, Callable]) -> Callable:
    """The writer of ``output_format`` (``inference.json``'s ``output_format``: ``nifti``, ``dicom_seg``).

    Args:
        output_format: the format asked for.
        writers: the writer of each format.

    Raises:
        ValueError: an unknown format, with the known ones.
    """
    if output_format not in writers:
        raise ValueError(f"--output_format {output_format!r} is not one of {', '.join(map(repr, writers))}.")
    return writers[output_format]
