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
"""Python that MONAI lacks for the SAM-Med3D bundle; configs reference it as ``scripts.<name>``."""

from .automatic import AutomaticInferer
from .batch import batch_requests
from .errors import exit_on_user_error
from .evaluator import PromptedEvaluator
from .inferer import ClickWindowInferer
from .prompts import ObjectPrompt, normalise_request, parse_request_prompts
from .session import InteractiveSession
from .simulation import simulate_clicks
from .weights import find_weights, load_weights, network_kwargs
from .windows import PreparedImage
from .writer import AtomicSaveImage
