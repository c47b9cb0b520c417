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
"""The CVPR 2025 SegFM challenge's interactive format: cases (``case``) and a predictor on the one session path
(``predictor``), as ``configs/segfm_predict.json`` runs it."""

from .case import SegfmCase, SegfmClass, case_from_arrays, case_image, read_case
from .predictor import RULES, SegfmPredictor, predict_case

__all__ = [
    "RULES",
    "SegfmCase",
    "SegfmClass",
    "SegfmPredictor",
    "case_from_arrays",
    "case_image",
    "predict_case",
    "read_case",
]
