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
"""Validate one fold in automatic mode: ``python scripts/validate.py run --config_file configs/hyper_parameters.yaml``.

Appends the mean Dice of the fold's validation items to ``progress.yaml`` (read by ``get_score``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import fire

# bundle_link.py sits beside this file; Auto3DSeg loads infer.py by its path, so this folder may not be on sys.path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bundle_link import use_bundle  # noqa: E402  # isort: skip


def run(config_file: str | Sequence[str] = "configs/hyper_parameters.yaml", **override) -> float:
    """Validate the trained fold; returns the mean Dice.

    Args:
        config_file: the template's config file(s).
        override: hyper-parameters to replace.
    """
    use_bundle(config_file)
    from scripts.auto3dseg import load_hyper_parameters, validate_fold

    return validate_fold(load_hyper_parameters(config_file, **override))


if __name__ == "__main__":
    fire.Fire()
