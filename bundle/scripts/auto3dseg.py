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
"""What the Auto3DSeg template ``sammed3d/`` runs: training, automatic-mode inference and validation of one fold.

The template's ``train.py``, ``infer.py`` and ``validate.py`` are thin: they read ``configs/hyper_parameters.yaml``,
put its ``bundle_root`` (this bundle, as an absolute path) on ``sys.path`` and call this module, so the template runs
the bundle's own ``configs/train.json``, network and automatic inferer instead of a second copy of them.

The hyper-parameters (a flat mapping) are those written by the ``sammed3d`` template's ``algo.py`` (in the source
repository); this module reads ``bundle_root``, ``output_path``, ``data_list_file_path``, ``data_file_base_dir``,
``fold``, ``class_ids``, ``num_class_prompts``, ``target_spacing``, ``roi_size``, ``network``, ``train`` (ids of
``train.json``), ``num_epochs``, ``pretrained_checkpoint``, ``overlap``, ``infer_threshold`` and ``device``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.auto3dseg.utils import datafold_read
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import LoadImage

from .evaluation.metrics import dice_score
from .inference.automatic import AutomaticInferer
from .inference.prompts import parse_request_prompts
from .weights import load_network

__all__ = ["load_hyper_parameters", "parse_list", "train_fold", "validate_fold", "AutomaticPredictor", "model_path"]

logger = logging.getLogger(__name__)

_LIST_KEYS = ("class_ids", "target_spacing", "roi_size")


def load_hyper_parameters(config_file: str | Sequence[str], **override) -> dict:
    """The template's hyper-parameters with command-line overrides (``a#b`` keys set nested values).

    Args:
        config_file: ``hyper_parameters.yaml``, a list of config files, or their comma-joined paths (as Auto3DSeg
            passes them).
        override: values that replace those of the files.
    """
    parser = ConfigParser()
    parser.read_config(config_file)
    for key, value in override.items():
        parser[key] = value
    return normalise({k: v for k, v in parser.get().items() if k != "_meta_"})


def parse_list(value, cast=float) -> list:
    """A list from a list or from the comma-joined string that Auto3DSeg's command line passes (``"1,2,3"``).

    Args:
        value: a list, tuple, number or string such as ``"1.5,1.5,1.5"`` or ``"[2, 5]"``.
        cast: the element type.
    """
    if isinstance(value, str):
        value = [v for v in value.strip("[]() ").replace(" ", "").split(",") if v]
    if isinstance(value, (int, float)):
        value = [value]
    return [cast(v) for v in value]


def normalise(hp: Mapping) -> dict:
    """Hyper-parameters with the list-valued keys parsed (command-line overrides arrive as strings).

    Args:
        hp: the hyper-parameters.
    """
    hp = dict(hp)
    for key in _LIST_KEYS:
        if hp.get(key) is not None:
            hp[key] = parse_list(hp[key], int if key in ("class_ids", "roi_size") else float)
    return hp


def model_path(hp: Mapping) -> Path:
    """Where a fold's trained weights are: ``<output_path>/model/model.pt``.

    Args:
        hp: the hyper-parameters.
    """
    return Path(hp["output_path"]) / "model" / "model.pt"


def _device(hp: Mapping) -> torch.device:
    name = hp.get("device") or ("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _fold_items(hp: Mapping) -> tuple[list[dict], list[dict]]:
    train, val = datafold_read(hp["data_list_file_path"], basedir=hp["data_file_base_dir"], fold=int(hp["fold"]))
    return train, val


def train_fold(hp: Mapping) -> float:
    """Train one fold with the bundle's ``configs/train.json`` (clicks and class prompts), then validate it.

    The training items are the datalist's ``training`` items of the other folds; the fold's own items validate
    (automatic mode, :func:`validate_fold`), which writes ``progress.yaml``. The bundle's N-click validation during
    training is switched off (``val_interval`` beyond the last epoch).

    Args:
        hp: the hyper-parameters.

    Returns:
        The validation Dice.
    """
    hp = normalise(hp)
    train_items, _ = _fold_items(hp)
    out = Path(hp["output_path"])
    epochs = int(hp["num_epochs"])
    parser = ConfigParser()
    parser.read_config(str(Path(hp["bundle_root"]) / "configs" / "train.json"))
    overrides = {
        "bundle_root": str(hp["bundle_root"]),
        "ckpt_dir": str(out / "model"),
        "output_dir": str(out / "eval"),
        "data_source": [{"image": it["image"], "label": it["label"]} for it in train_items],
        "class_ids": list(hp["class_ids"]),
        "target_spacing": list(hp["target_spacing"]),
        "roi_size": list(hp["roi_size"]),
        "num_class_prompts": int(hp["num_class_prompts"]),
        "pretrained_checkpoint": hp.get("pretrained_checkpoint") or None,
        "epochs": epochs,
        "val_fraction": 0.0,
        "val_interval": epochs + 1,
        "device": f"$torch.device('{_device(hp)}')",
        **dict(hp.get("network") or {}),
        **dict(hp.get("train") or {}),
    }
    for key, value in overrides.items():
        parser[key] = value
    parser.parse()
    parser.get_parsed_content("initialize")  # seeds, checkpoint saver (evaluating the expressions runs them)
    parser.get_parsed_content("run")
    return validate_fold(hp)


class AutomaticPredictor:
    """The trained network of a fold with the automatic inferer: ``infer(item)`` -> ``[C, I, J, K]`` probabilities.

    Args:
        hp: the hyper-parameters.
        weights: the weights to load (default :func:`model_path`).
    """

    def __init__(self, hp: Mapping, weights: str | os.PathLike | None = None) -> None:
        self.hp = normalise(hp)
        self.device = _device(self.hp)
        self.class_ids = list(self.hp["class_ids"])
        self.network = load_network(weights=weights or model_path(self.hp), device=self.device)
        self.inferer = AutomaticInferer(
            spacing=self.hp["target_spacing"], roi_size=self.hp["roi_size"], overlap=float(self.hp.get("overlap", 0.25))
        )
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)

    def infer(self, item: str | Mapping) -> MetaTensor:
        """Per-class probabilities on the item's original grid; the item's clicks (``points``/``objects`` with a
        ``label`` among ``class_ids``) refine their class.

        Args:
            item: an image path or a datalist item ``{"image": path, ...}``.
        """
        request = {"image": item} if isinstance(item, (str, os.PathLike)) else dict(item)
        image = self.loader(request["image"])
        has_clicks = any(k in request for k in ("objects", "points", "points_world"))
        objects = parse_request_prompts(request, image.shape[1:], image.affine) if has_clicks else []
        with torch.no_grad():
            return self.inferer(image, self.network, self.class_ids, objects)


def validate_fold(hp: Mapping, items: Sequence[Mapping] | None = None) -> float:
    """Mean Dice (over cases and classes, automatic mode, threshold ``infer_threshold``) of the fold's validation
    items; appends ``{"best_avg_dice_score", "epoch"}`` to ``<output_path>/progress.yaml`` for ``get_score``.

    Args:
        hp: the hyper-parameters.
        items: the items to validate (default: the fold's validation items).
    """
    hp = normalise(hp)
    items = _fold_items(hp)[1] if items is None else items
    predictor = AutomaticPredictor(hp)
    threshold = float(hp.get("infer_threshold", 0.5))
    scores = []
    for item in items:
        probabilities = predictor.infer({"image": item["image"]}).as_tensor().numpy()
        truth = np.asarray(LoadImage(image_only=True)(item["label"]))
        for channel, class_id in enumerate(predictor.class_ids):
            scores.append(dice_score(probabilities[channel] > threshold, truth == class_id))
    finite = [v for v in scores if not np.isnan(v)]  # a class absent from a case and not predicted: no score
    score = float(np.mean(finite)) if finite else 0.0
    progress = Path(hp["output_path"]) / "progress.yaml"
    records = ConfigParser.load_config_file(str(progress)) if progress.is_file() else []
    records = list(records or []) + [{"best_avg_dice_score": score, "epoch": int(hp["num_epochs"])}]
    ConfigParser.export_config_file(records, str(progress), fmt="yaml", default_flow_style=None, sort_keys=False)
    logger.info(f"fold {hp['fold']}: automatic-mode Dice {score:.4f} over {len(items)} case(s)")
    return score
