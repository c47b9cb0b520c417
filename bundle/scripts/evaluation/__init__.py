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
"""Evaluation: clicks simulated from a label (the reference's rule), the one N-click loop, metrics, reports and the
N-click evaluator, and the SegFM challenge's protocol (scores, click rule, loop, reports)."""

from .clicks import FIRST_CLICK_SEED, error_regions, sample_first_click, simulate_clicks
from .evaluator import NClickEvaluator
from .metrics import curve_auc, dice_score, surface_dice
from .nclick import case_classes, nclick_case
from .reports import ClickCurveMetric, ClickReportWriter, summarise, write_reports
from .segfm_evaluation import SegfmEvaluation, write_segfm_reports
from .segfm_loop import nifti_case, segfm_loop
