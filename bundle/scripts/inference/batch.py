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
"""Requests for a folder of images from one prompts file (``batch_inference.json``)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["BATCH_ERROR", "batch_requests"]

# The key of a request that is known to be bad before anything is read; its value is the reason.
BATCH_ERROR = "batch_error"


def batch_requests(input_dir: str, prompts_file: str, strict: bool = True) -> list[dict]:
    """One request per entry of ``prompts_file``: ``{"<image file name>": {<request without 'image'>}, ...}``.

    Args:
        input_dir: the folder of images.
        prompts_file: JSON file mapping image file names (relative to ``input_dir``) to their prompts, e.g.
            ``{"ct1.nii.gz": {"points": [[10, 20, 30]], "point_labels": [1]}}`` or ``{"ct2.nii.gz": {"label_prompt":
            [2, 21]}}`` (automatic mode).
        strict: a bad entry (its image absent, its prompts not a dict) raises at once; otherwise it becomes a request
            that carries only its ``image`` and the reason under :data:`BATCH_ERROR`, for the batch to report as a
            failed case while the others go on (``stop_on_error`` off).

    Returns:
        The requests, in the file's order.

    Raises:
        FileNotFoundError: the prompts file is absent (or, when ``strict``, an image it names).
        ValueError: the prompts file is not a JSON dict of entries (or, when ``strict``, an entry is malformed).
    """
    path = Path(prompts_file)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}).") from e
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path} must map image file names to their prompts, e.g. {{'ct.nii.gz': {{'points': ...}}}}.")
    requests = []
    for name, prompts in entries.items():
        image = Path(input_dir) / name
        try:
            if not image.exists():
                raise FileNotFoundError(f"{path} names {name}, which is not in {input_dir}.")
            if not isinstance(prompts, dict) or "image" in prompts:
                raise ValueError(f"{path}: the prompts of {name} must be a dict of request keys without 'image'.")
        except (FileNotFoundError, ValueError) as e:
            if strict:
                raise
            requests.append({"image": str(image), BATCH_ERROR: str(e)})
            continue
        requests.append({"image": str(image), **prompts})
    return requests
