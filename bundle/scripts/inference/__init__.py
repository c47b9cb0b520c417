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
"""Inference: requests and prompts, the prepared image, the one interactive path (``ObjectTrack``), and its front ends
(the command line's inferer and workflow, the session, automatic mode, batches, the atomic writers: label maps and
DICOM SEG)."""

from .automatic import AutomaticInferer, probabilities_to_labels
from .batch import BATCH_ERROR, batch_requests
from .batch_ledger import BatchLedger
from .batch_run import BatchDataset, BatchEvaluator
from .dicom_seg import DicomSegWriter
from .image_input import as_image
from .inferer import ClickWindowInferer, track_object
from .prepared import PreparedImage, Window
from .prompts import ObjectPrompt, normalise_request, parse_request_prompts, voxel_points
from .session import InteractiveSession
from .track import ObjectTrack
from .workflow import PromptedEvaluator
from .writer import AtomicSaveImage, select_writer
