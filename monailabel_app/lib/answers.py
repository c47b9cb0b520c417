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
"""The answer file a viewer asks for: a 0/1 mask on the image's grid as NIfTI (3D Slicer) or NRRD (OHIF), written at
the cost of the object, not of the image.

An answer is the whole image's grid (78 MB for 512x512x300) holding an object of a few cm. Its bytes (first axis
fastest, as both formats store them) are zero but for the object's rows, so only those are written: into a sparse
file when uncompressed, and, when gzipped, as deflate blocks of the rows between copies of one precompressed block of
zeros (a valid deflate stream: every block ends byte-aligned and refers to nothing before it). Reading back gives
exactly what nibabel and pynrrd would have written (``tests/test_monailabel_app.py``). ITK is not used: it loads its
wrapping modules on first use, seconds that the first click would pay.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from collections.abc import Iterator

import nibabel as nib
import numpy as np

__all__ = ["ANSWER_EXTENSIONS", "write_answer"]

# File types a mask can be returned as (``result_extension``); OHIF asks for ".nrrd".
ANSWER_EXTENSIONS = (".nii.gz", ".nii", ".nrrd")
# gzip level: the fastest (masks compress well at any level), as nibabel's default
_LEVEL = 1
_ZERO_CHUNK = bytes(1 << 20)
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_NIFTI_OFFSET = 352  # header (348 bytes) and an empty extension flag


def _deflated(data: bytes) -> bytes:
    """``data`` as raw deflate blocks that end byte-aligned and refer to nothing before them."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


_DEFLATED_ZERO_CHUNK = _deflated(_ZERO_CHUNK)


def _object_rows(box: tuple[slice, ...], block: np.ndarray, shape: tuple[int, ...]) -> Iterator[tuple[int, bytes]]:
    """The stretches of the volume's bytes (first axis fastest) that can hold a 1: ``(offset, bytes)`` in order, one per
    plane of the box's last axis (its rows of the box's first two axes, full rows of the first)."""
    rows = np.zeros((shape[0], box[1].stop - box[1].start), dtype=np.uint8, order="F")
    for k in range(box[2].start, box[2].stop):
        plane = block[:, :, k - box[2].start]
        if plane.any():
            rows[box[0], :] = plane
            yield (k * shape[1] + box[1].start) * shape[0], rows.tobytes(order="F")


def _write_raw(f, rows: Iterator[tuple[int, bytes]], size: int) -> None:
    """The volume's bytes from the file's position on, as a sparse region: the zeros are holes."""
    start = f.tell()
    for offset, data in rows:
        f.seek(start + offset)
        f.write(data)
    f.truncate(start + size)


def _write_gzip(f, head: bytes, rows: Iterator[tuple[int, bytes]], size: int) -> None:
    """``head`` and the volume's bytes as one gzip member; runs of zeros are copies of a precompressed block."""
    f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip, deflate, no name, no time, unknown OS
    f.write(_deflated(head))
    crc, done = zlib.crc32(head), 0

    def zeros(count: int) -> None:
        nonlocal crc
        for _ in range(count // len(_ZERO_CHUNK)):
            f.write(_DEFLATED_ZERO_CHUNK)
            crc = zlib.crc32(_ZERO_CHUNK, crc)
        rest = bytes(count % len(_ZERO_CHUNK))
        f.write(_deflated(rest))
        crc = zlib.crc32(rest, crc)

    for offset, data in rows:
        zeros(offset - done)
        f.write(_deflated(data))
        crc, done = zlib.crc32(data, crc), offset + len(data)
    zeros(size - done)
    f.write(b"\x03\x00")  # the final, empty block
    f.write(struct.pack("<II", crc & 0xFFFFFFFF, (len(head) + size) & 0xFFFFFFFF))


def _nifti_header(shape: tuple[int, ...], affine: np.ndarray) -> bytes:
    """nibabel's single-file header of a uint8 image, as ``nib.save`` writes it."""
    image = nib.Nifti1Image(np.empty(shape, dtype=np.uint8), affine)  # never touched: no memory
    image.header.set_xyzt_units("mm")
    image.update_header()
    image.header.set_data_offset(_NIFTI_OFFSET)
    image.header.set_slope_inter(1.0, 0.0)
    return image.header.binaryblock + bytes(_NIFTI_OFFSET - 348)


def _nrrd_header(shape: tuple[int, ...], affine: np.ndarray, encoding: str) -> bytes:
    """A NRRD header of a uint8 volume in LPS space (as ITK and OHIF read it)."""
    lps = _RAS_TO_LPS @ affine[:3]

    def vector(values: np.ndarray) -> str:
        return "(" + ",".join(repr(float(v)) for v in values) + ")"

    lines = [
        "NRRD0004",
        "type: uint8",
        "dimension: 3",
        "space: left-posterior-superior",
        f"sizes: {' '.join(str(int(s)) for s in shape)}",
        f"space directions: {' '.join(vector(lps[:, axis]) for axis in range(3))}",
        "kinds: domain domain domain",
        f"encoding: {encoding}",
        f"space origin: {vector(lps[:, 3])}",
    ]
    return ("\n".join(lines) + "\n\n").encode("ascii")


def write_answer(
    box: tuple[slice, ...],
    block: np.ndarray,
    shape: tuple[int, ...],
    affine: np.ndarray,
    extension: str,
    compress: bool,
    folder: str,
) -> str:
    """Write a mask given as a box of the image's grid and the mask there (0 elsewhere) into ``folder``; its path.

    Args:
        box: slices of the image's grid.
        block: bool or 0/1 mask on the box.
        shape: the image's shape ``(I, J, K)``.
        affine: 4x4 voxel-to-RAS (mm) matrix of the image.
        extension: one of :data:`ANSWER_EXTENSIONS`.
        compress: gzip a NRRD's data (OHIF asks for raw; ``.nii.gz`` is always compressed, ``.nii`` never).
        folder: where the file goes (a unique name is made there).
    """
    if extension not in ANSWER_EXTENSIONS:
        raise ValueError(f"result_extension must be one of {', '.join(ANSWER_EXTENSIONS)}, got {extension!r}.")
    shape = tuple(int(s) for s in shape)
    affine = np.asarray(affine, dtype=np.float64)
    rows = _object_rows(box, np.asarray(block) != 0, shape) if block.size else iter(())
    size = int(np.prod(shape))
    descriptor, path = tempfile.mkstemp(suffix=extension, prefix="mask_", dir=folder)
    with os.fdopen(descriptor, "wb") as f:
        if extension == ".nrrd":  # NRRD's gzip encoding covers the data, not the header
            f.write(_nrrd_header(shape, affine, "gzip" if compress else "raw"))
            if compress:
                _write_gzip(f, b"", rows, size)
            else:
                _write_raw(f, rows, size)
        elif extension == ".nii.gz":
            _write_gzip(f, _nifti_header(shape, affine), rows, size)
        else:
            f.write(_nifti_header(shape, affine))
            _write_raw(f, rows, size)
    return path
