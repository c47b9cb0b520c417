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
"""Python that MONAI lacks for the SAM-Med3D bundle; configs reference it through the ``scripts`` config id.

Sub-packages by role: ``networks`` (the model, tensors only), ``geometry`` (grids, resampling, windows,
paste-back), ``inference`` (prompts, the one interactive path ``ObjectTrack`` and its front ends), ``training``,
``evaluation``; ``weights.load_network`` is the one call that gives a ready network from a bundle folder.
"""

from . import evaluation, geometry, inference, networks, segfm, training  # the roles, as configs name them
from .distributed import end_distributed
from .errors import exit_on_user_error, one_line_errors
from .evaluation import simulate_clicks
from .inference import (
    AtomicSaveImage,
    AutomaticInferer,
    ClickWindowInferer,
    InteractiveSession,
    ObjectPrompt,
    ObjectTrack,
    PreparedImage,
    PromptedEvaluator,
    batch_requests,
    normalise_request,
    parse_request_prompts,
)
from .weights import find_weights, load_network
