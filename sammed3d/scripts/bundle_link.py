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
"""Find the SAM-Med3D bundle that the template's scripts run (its ``bundle_root`` hyper-parameter).

One module for ``train.py``, ``validate.py`` and ``infer.py``. Auto3DSeg runs the first two as scripts and loads
``infer.py`` from its file alone, so each puts this folder on ``sys.path`` before importing it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from monai.bundle import ConfigParser

__all__ = ["use_bundle"]


def use_bundle(config_file: str | Sequence[str]) -> None:
    """Put the SAM-Med3D bundle named by ``bundle_root`` in the hyper-parameters first on ``sys.path``.

    Args:
        config_file: the template's config file(s), a list or comma-joined paths.
    """
    parser = ConfigParser()
    parser.read_config(config_file)
    root = parser.get("bundle_root")
    if not root or not os.path.isfile(os.path.join(str(root), "scripts", "auto3dseg.py")):
        raise ValueError(f"bundle_root {root!r} in hyper_parameters.yaml is not a SAM-Med3D bundle.")
    root = os.path.abspath(str(root))
    if root not in sys.path:
        sys.path.insert(0, root)
    loaded = sys.modules.get("scripts")
    if loaded is not None and not os.path.abspath(str(getattr(loaded, "__file__", ""))).startswith(root):
        raise RuntimeError(f"another 'scripts' package is already imported ({loaded.__file__}); run from elsewhere.")
