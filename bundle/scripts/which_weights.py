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
"""``python -m scripts.which_weights [<folder>]``: print the weights file the bundle uses (``find_weights``).

For commands that need the file's name, e.g. ``ckpt_export --ckpt_file "$(python -m scripts.which_weights)"``.
No weights: one ``error:`` line saying how to get them, exit status 1.
"""

from __future__ import annotations

import sys

from .errors import exit_on_user_error
from .weights import find_weights


def main(ckpt_dir: str = "models") -> None:
    """Print the weights file :func:`find_weights` picks.

    Args:
        ckpt_dir: the folder searched (default ``models``, run from the bundle folder).
    """
    print(find_weights(ckpt_dir))


if __name__ == "__main__":
    exit_on_user_error(main, *sys.argv[1:2])
