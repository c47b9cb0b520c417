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
"""``Sammed3dAlgo``: the SAM-Med3D algorithm of Auto3DSeg (``BundleGen`` finds it as ``sammed3d.scripts.algo``).

``fill_template_config`` writes ``configs/hyper_parameters.yaml`` of one fold from ``input.yaml`` and the data
statistics. The template holds no copy of the SAM-Med3D code: it writes the **absolute path of the bundle**
(``bundle_root``) into the hyper-parameters and its scripts put that path on ``sys.path`` and run the bundle's
``configs/train.json`` and ``scripts.auto3dseg``. The bundle is found from ``input.yaml``'s ``sammed3d_bundle_root``,
else from the environment variable ``SAMMED3D_BUNDLE_ROOT``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from monai.apps.auto3dseg import BundleAlgo
from monai.bundle import ConfigParser

__all__ = ["Sammed3dAlgo", "read_input_config", "check_input", "bundle_root_of"]

# keys of input.yaml's optional ``sammed3d`` section that replace the template's defaults
_USER_KEYS = (
    "num_epochs",
    "network",
    "train",
    "target_spacing",
    "roi_size",
    "pretrained_checkpoint",
    "overlap",
    "infer_threshold",
    "device",
)


def read_input_config(data_list_file: str | Mapping) -> dict:
    """``input.yaml`` (a path or the mapping itself) as a dict.

    Args:
        data_list_file: Auto3DSeg's data source config.
    """
    if isinstance(data_list_file, Mapping):
        return dict(data_list_file)
    return dict(ConfigParser.load_config_file(str(data_list_file)))


def check_input(cfg: Mapping) -> None:
    """Raise a ``ValueError`` unless ``input.yaml`` has a modality and a datalist whose training items have labels.

    Args:
        cfg: the contents of ``input.yaml``.
    """
    if not cfg.get("modality"):
        raise ValueError("input.yaml has no 'modality': add e.g. 'modality: CT' (or MRI).")
    if not cfg.get("datalist"):
        raise ValueError("input.yaml has no 'datalist': give the path of the datalist JSON.")
    datalist = ConfigParser.load_config_file(str(cfg["datalist"]))
    training = datalist.get("training") or []
    if not training:
        raise ValueError(f"{cfg['datalist']}: no 'training' items; SAM-Med3D trains on labelled images.")
    unlabelled = [str(item.get("image")) for item in training if not item.get("label")]
    if unlabelled:
        raise ValueError(
            f"{cfg['datalist']}: {len(unlabelled)} training item(s) without a 'label' (e.g. {unlabelled[0]}); "
            "SAM-Med3D needs a label map per training image."
        )


def bundle_root_of(cfg: Mapping) -> str:
    """The absolute path of the SAM-Med3D bundle: ``input.yaml``'s ``sammed3d_bundle_root`` or
    ``$SAMMED3D_BUNDLE_ROOT``.

    Args:
        cfg: the contents of ``input.yaml``.
    """
    root = cfg.get("sammed3d_bundle_root") or os.environ.get("SAMMED3D_BUNDLE_ROOT")
    if not root:
        raise ValueError(
            "the sammed3d template runs the SAM-Med3D bundle's code: set 'sammed3d_bundle_root' in input.yaml or "
            "the environment variable SAMMED3D_BUNDLE_ROOT to the bundle folder (the one with configs/train.json)."
        )
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.isfile(os.path.join(root, "scripts", "auto3dseg.py")):
        raise ValueError(f"{root} is not the SAM-Med3D bundle (no scripts/auto3dseg.py).")
    return root


class Sammed3dAlgo(BundleAlgo):
    """SAM-Med3D with learned class prompts (automatic mode), trained and run through the bundle's code."""

    def pre_check_skip_algo(self, skip_bundlegen: bool = False, skip_info: str = "") -> tuple[bool, str]:
        """Check ``input.yaml`` and the datalist before anything is generated; bad input raises, it is not skipped.

        Args:
            skip_bundlegen: skip this algorithm (passed through).
            skip_info: why (passed through).
        """
        cfg = read_input_config(self.data_list_file)
        check_input(cfg)
        bundle_root_of(cfg)
        return skip_bundlegen, skip_info

    def fill_template_config(self, data_stats_filename: str, output_path: str, **kwargs: Any) -> dict:
        """Write ``configs/hyper_parameters.yaml`` of one fold.

        Derived: ``class_ids`` (the label values found by the data analysis, or ``input.yaml``'s ``class_ids``),
        ``num_class_prompts`` (largest class id + 1), ``modality``, ``intensity_bounds`` (foreground 0.5/99.5
        percentiles) and ``data_spacing_median`` / ``n_cases`` (recorded; SAM-Med3D keeps its own 1.5 mm spacing and
        per-window z-normalisation unless ``sammed3d: {target_spacing: ...}`` says otherwise). Values under
        ``input.yaml``'s ``sammed3d`` section (``num_epochs``, ``network``, ``train``, ...) replace the defaults.

        Args:
            data_stats_filename: ``datastats.yaml`` of the data analysis.
            output_path: the fold's algorithm folder.
            kwargs: ``fold`` (default 0); others are ignored.

        Returns:
            ``{"hyper_parameters.yaml": {key: value}}``, the values written.
        """
        cfg = read_input_config(self.data_list_file)
        check_input(cfg)
        stats = ConfigParser(globals=False)
        stats.read_config(data_stats_filename)
        labels = [int(v) for v in stats.get("stats_summary#label_stats#labels", []) if int(v) != 0]
        class_ids = [int(c) for c in cfg.get("class_ids") or labels]
        if not class_ids:
            raise ValueError(f"{data_stats_filename}: the labels hold no class (only background).")
        unknown = sorted(set(class_ids) - set(labels))
        if labels and unknown:
            raise ValueError(f"input.yaml class_ids {unknown} are not in the labels (found {labels}).")
        fill = {
            "bundle_root": bundle_root_of(cfg),
            "output_path": os.path.abspath(output_path),
            "data_list_file_path": os.path.abspath(str(cfg["datalist"])),
            "data_file_base_dir": os.path.abspath(str(cfg.get("dataroot", ""))),
            "fold": int(kwargs.get("fold", 0)),
            "modality": str(cfg["modality"]).upper(),
            "class_ids": class_ids,
            "num_class_prompts": max(class_ids) + 1,
            "intensity_bounds": [
                float(stats.get("stats_summary#image_foreground_stats#intensity#percentile_00_5")),
                float(stats.get("stats_summary#image_foreground_stats#intensity#percentile_99_5")),
            ],
            "data_spacing_median": [float(s) for s in stats.get("stats_summary#image_stats#spacing#median")],
            "n_cases": int(stats.get("stats_summary#n_cases")),
        }
        user = dict(cfg.get("sammed3d") or {})
        bad = sorted(set(user) - set(_USER_KEYS))
        if bad:
            raise ValueError(f"input.yaml sammed3d: unknown key(s) {bad}; known: {list(_USER_KEYS)}.")
        fill.update(user)
        config_file = os.path.join(output_path, "configs", "hyper_parameters.yaml")
        parser = ConfigParser(globals=False)
        parser.read_config(config_file)
        for key, value in fill.items():
            parser[key] = value
        ConfigParser.export_config_file(parser.get(), config_file, fmt="yaml", default_flow_style=None, sort_keys=False)
        return {"hyper_parameters.yaml": fill}


if __name__ == "__main__":
    from monai.utils import optional_import

    fire, _ = optional_import("fire")
    fire.Fire({"Sammed3dAlgo": Sammed3dAlgo})
