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
"""Automatic-mode inference of a trained fold: ``InferClass(config_file).infer(item)`` -> ``[K, H, W, D]`` scores.

Channel 0 is ``infer_threshold`` (background), channel ``c`` the sigmoid probability of class ``c`` (0 for label
values not in ``class_ids``; ``K`` = largest class id + 1), on the item's original grid. Auto3DSeg's ensemble, with
``sigmoid: False`` in ``input.yaml``, averages the folds' scores and takes the argmax over channels, so it writes a
label map: each voxel the most probable class above the threshold, else 0. Clicks in the item
(``points``/``point_labels`` or ``objects`` with a ``label``) refine their class. From the shell: ``python
scripts/infer.py run --config_file configs/hyper_parameters.yaml`` writes the label maps of the datalist's
``testing`` items to ``<output_path>/prediction``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import fire
import torch

# bundle_link.py sits beside this file; Auto3DSeg loads infer.py by its path, so this folder may not be on sys.path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bundle_link import use_bundle  # noqa: E402  # isort: skip


class InferClass:
    """The trained network of a fold with the bundle's automatic inferer.

    Args:
        config_file: the template's config file(s).
        override: hyper-parameters to replace (Auto3DSeg's predict parameters land here; unknown ones are kept and
            ignored).
    """

    def __init__(self, config_file: str | Sequence[str] = "configs/hyper_parameters.yaml", **override) -> None:
        use_bundle(config_file)
        from scripts.auto3dseg import AutomaticPredictor, load_hyper_parameters

        known = {"class_ids", "device", "overlap", "infer_threshold", "output_path"}
        self.hp = load_hyper_parameters(config_file, **{k: v for k, v in override.items() if k in known})
        self.predictor = AutomaticPredictor(self.hp)

    def infer(self, image_file: str | Mapping):
        """``[K, H, W, D]`` scores whose argmax over channels is the label map (see the module docstring).

        Args:
            image_file: an image path or a datalist item ``{"image": path, ...}``.
        """
        probabilities = self.predictor.infer(image_file)
        return label_scores(probabilities, self.predictor.class_ids, float(self.hp["infer_threshold"]))


def label_scores(probabilities, class_ids: Sequence[int], threshold: float):
    """Per-class probabilities ``[C, ...]`` as scores ``[max(class_ids) + 1, ...]`` indexed by label value.

    Channel 0 holds ``threshold``, so the argmax is the most probable class above it, else 0 (ties go to 0).

    Args:
        probabilities: one channel per entry of ``class_ids`` (a MetaTensor keeps its meta).
        class_ids: the label value of each channel.
        threshold: the probability a voxel needs to be labelled.
    """
    scores = probabilities.new_zeros((max(class_ids) + 1, *probabilities.shape[1:]))
    scores[0] = threshold
    scores[torch.as_tensor(list(class_ids))] = probabilities
    return scores


def run(config_file: str | Sequence[str] = "configs/hyper_parameters.yaml", **override) -> None:
    """Write the label map (most probable class above ``infer_threshold``) of every ``testing`` item.

    Args:
        config_file: the template's config file(s).
        override: hyper-parameters to replace.
    """
    infer = InferClass(config_file, **override)
    from monai.auto3dseg.utils import datafold_read
    from monai.transforms import SaveImage

    from scripts.inference import probabilities_to_labels

    hp = infer.hp
    items, _ = datafold_read(hp["data_list_file_path"], basedir=hp["data_file_base_dir"], fold=-1, key="testing")
    saver = SaveImage(output_dir=os.path.join(hp["output_path"], "prediction"), output_postfix="seg", resample=False)
    for item in items:
        probabilities = infer.predictor.infer(item)
        labels = probabilities_to_labels(probabilities, infer.predictor.class_ids, float(hp["infer_threshold"]))
        saver(labels, meta_data=probabilities.meta)


if __name__ == "__main__":
    fire.Fire()
