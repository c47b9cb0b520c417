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
"""Training on MONAI's ``SupervisedTrainer``: datalists, transforms, click simulation, loss, optimiser groups,
checkpoints and the progress monitor; only what MONAI lacks."""

from .checkpoints import AtomicCheckpointSaver, checkpoint_objects, initial_network, model_objects
from .click_simulation import ClickSimulation
from .clicks import CLICK_RULES, sample_error_clicks
from .datalist import load_datalist, prepare_datalist, split_datalist
from .losses import RoundsLoss
from .monitor import TrainingMonitor
from .optim import param_groups
from .transforms import RandClassWindowd, ResampleToSpacingd
