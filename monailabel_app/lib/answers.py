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
"""The answer file a viewer asks for: a 0/1 mask on the image's grid as NIfTI (3D Slicer) or NRRD (OHIF).

Both are written directly with their format libraries, not through ITK: ITK loads its wrapping modules on first use,
several seconds that the first click would pay, and copies the volume into an ITK image first.
"""

from __future__ import annotations

import os
import tempfile

import nibabel as nib
import nrrd
import numpy as np

__all__ = ["ANSWER_EXTENSIONS", "write_answer"]

# File types a mask can be returned as (``result_extension``); OHIF asks for ".nrrd".
ANSWER_EXTENSIONS = (".nii.gz", ".nii", ".nrrd")
# gzip level of compressed NRRD answers: the fastest (masks compress well at any level), as nibabel's default
_COMPRESSION_LEVEL = 1
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def write_answer(mask: np.ndarray, affine: np.ndarray, extension: str, compress: bool, folder: str) -> str:
    """Write a mask with the image's voxel-to-RAS ``affine`` into ``folder`` and return the file's path.

    Args:
        mask: bool or 0/1 ``(I, J, K)`` mask on the image's grid.
        affine: 4x4 voxel-to-RAS (mm) matrix of the image.
        extension: one of :data:`ANSWER_EXTENSIONS`.
        compress: gzip the NRRD data (OHIF asks for raw; ``.nii.gz`` is always compressed, ``.nii`` never).
        folder: where the file goes (a unique name is made there).
    """
    if extension not in ANSWER_EXTENSIONS:
        raise ValueError(f"result_extension must be one of {', '.join(ANSWER_EXTENSIONS)}, got {extension!r}.")
    data = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)  # bool bytes are 0/1: no copy
    affine = np.asarray(affine, dtype=np.float64)
    descriptor, path = tempfile.mkstemp(suffix=extension, prefix="mask_", dir=folder)
    os.close(descriptor)
    if extension == ".nrrd":
        lps = _RAS_TO_LPS @ affine[:3]  # NRRD's space is LPS, as ITK and OHIF read it
        header = {
            "type": "uint8",
            "space": "left-posterior-superior",
            "space directions": lps[:, :3].T,
            "space origin": lps[:, 3],
            "kinds": ["domain", "domain", "domain"],
            "encoding": "gzip" if compress else "raw",
        }
        nrrd.write(path, data, header, compression_level=_COMPRESSION_LEVEL, index_order="F")
    else:
        image = nib.Nifti1Image(data, affine)
        image.header.set_xyzt_units("mm")
        nib.save(image, path)  # nibabel gzips at its default level 1, the fastest
    return path
