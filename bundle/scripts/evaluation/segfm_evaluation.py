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
"""``protocol: segfm`` of ``evaluate.json``: the challenge's loop over NIfTI or npz cases with the bundle's predictor,
reported as the evaluator's CSV columns, a JSON with the clicks, and the Dice-vs-step plot."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .segfm_loop import NUM_CLICKS, nifti_case, segfm_loop

__all__ = ["SegfmEvaluation", "write_segfm_reports"]

logger = logging.getLogger(__name__)

_COLUMNS = ["case", "num_class", "DSC_AUC", "NSD_AUC", "DSC_Final", "NSD_Final"]


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_segfm_reports(records: Sequence[dict], output_dir: str | os.PathLike, prefix: str = "segfm") -> dict:
    """Write ``<prefix>_metrics.csv`` (one row per case, the evaluator's columns), ``<prefix>_metrics.json`` (rows,
    clicks and the means) and ``<prefix>_dice.png`` (DSC per step, each case and the mean).

    Args:
        records: :func:`segfm_loop`'s records.
        output_dir: the folder.
        prefix: the files' prefix.

    Returns:
        The means over the cases.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = NUM_CLICKS + 1
    per_step = [f"{m}_{s}" for m in ("DSC", "NSD") for s in range(1, steps + 1)]
    times = [f"RunningTime_{s}" for s in range(1, steps + 1)] + ["TotalRunningTime"]
    columns = _COLUMNS + per_step + times
    means = {c: float(np.mean([r[c] for r in records])) for c in columns[2:]}
    lines = [",".join(columns)]
    lines += [
        ",".join(str(r[c]) if isinstance(r[c], (str, int)) else repr(float(r[c])) for c in columns) for r in records
    ]
    _atomic_text(out / f"{prefix}_metrics.csv", "\n".join(lines) + "\n")
    _atomic_text(out / f"{prefix}_metrics.json", json.dumps({"cases": list(records), "mean": means}, indent=4) + "\n")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    x = np.arange(1, steps + 1)
    for r in records:
        ax.plot(x, [r[f"DSC_{s}"] for s in x], color="0.7", linewidth=0.8)
    ax.plot(x, [means[f"DSC_{s}"] for s in x], color="C0", marker="o", label="mean")
    ax.set_xticks(x, ["box"] + [f"click {s}" for s in range(1, steps)], fontsize=7)
    ax.set_ylabel("DSC")
    ax.set_ylim(0, 1)
    ax.set_title(f"SegFM protocol, {len(records)} case(s)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    partial = out / f".{prefix}_dice.partial-{os.getpid()}.png"
    fig.savefig(partial)
    plt.close(fig)
    os.replace(partial, out / f"{prefix}_dice.png")
    return means


class SegfmEvaluation:
    """The challenge's protocol on a set of cases, each step predicted by ``scripts.segfm.predict_case`` (the
    predictor's path, in process: one model load for all cases).

    Cases are either challenge npz files (``cases_dir`` with ``imgs``/``spacing``/``boxes``, ``gts_dir`` with
    ``gts`` of the same name) or NIfTI image/label pairs (``datalist`` items with ``image``, ``label`` and
    ``classes``, turned into cases by :func:`nifti_case`).

    Args:
        network: the network.
        inferer: the ``ClickWindowInferer``.
        output_dir: where the reports go.
        datalist: NIfTI items, used when ``cases_dir`` is ``None``.
        cases_dir: folder of case ``.npz`` files, or ``None``.
        gts_dir: folder of their ground truths.
        rule: the predictor's rule, ``"session"`` or ``"upstream"``.
        seed: the ``upstream`` rule's jitter seed.
        prefix: the reports' prefix.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        inferer,
        output_dir: str,
        datalist: Sequence[dict] = (),
        cases_dir: str | None = None,
        gts_dir: str | None = None,
        rule: str = "session",
        seed: int = 0,
        prefix: str = "segfm",
    ) -> None:
        from ..segfm import RULES

        if rule not in RULES:
            raise ValueError(f"segfm_rule must be one of {', '.join(RULES)}, got {rule!r}.")
        if cases_dir is not None and gts_dir is None:
            raise ValueError("segfm_cases needs segfm_gts: the folder of the cases' ground truths (gts).")
        self.network, self.inferer, self.output_dir = network, inferer, output_dir
        self.datalist, self.cases_dir, self.gts_dir = list(datalist), cases_dir, gts_dir
        self.rule, self.seed, self.prefix = rule, int(seed), prefix

    def cases(self):
        """``(name, arrays, gts)`` of every case."""
        if self.cases_dir is not None:
            files = sorted(Path(self.cases_dir).glob("*.npz"))
            if not files:
                raise FileNotFoundError(f"no *.npz case in {self.cases_dir}.")
            for path in files:
                gts_file = Path(self.gts_dir) / path.name
                if not gts_file.is_file():
                    raise FileNotFoundError(f"case {path.stem}: no ground truth {gts_file}.")
                with np.load(path, allow_pickle=True) as f:
                    arrays = {k: f[k] for k in f.files if k in ("imgs", "spacing", "boxes")}
                with np.load(gts_file) as f:
                    yield path.stem, arrays, f["gts"]
            return
        import nibabel as nib

        for item in self.datalist:
            image, label = nib.load(str(item["image"])), nib.load(str(item["label"]))
            arrays, gts = nifti_case(
                np.asarray(image.dataobj), np.asarray(label.dataobj), image.header.get_zooms(), item["classes"]
            )
            yield Path(str(item["image"])).name.split(".")[0], arrays, gts

    def run(self) -> dict:
        """Run every case and write the reports; returns the means."""
        from ..segfm import case_from_arrays, predict_case

        records = []
        for name, arrays, gts in self.cases():

            def predict(inputs: dict, name: str = name) -> np.ndarray:
                case = case_from_arrays(name, inputs)
                with torch.no_grad():
                    return predict_case(case, self.network, self.inferer, self.rule, self.seed)

            record = segfm_loop(name, arrays, gts, predict)
            records.append(record)
            per_step = ", ".join(f"{record['DSC_' + str(s)]:.4f}" for s in range(1, NUM_CLICKS + 2))
            logger.info(
                f"case {name}: DSC per step {per_step}; DSC_AUC {record['DSC_AUC']:.4f}, NSD_AUC {record['NSD_AUC']:.4f}"
            )
        means = write_segfm_reports(records, self.output_dir, self.prefix)
        logger.info(f"SegFM protocol ({self.rule} rule), {len(records)} case(s): {json.dumps(means)}")
        return means
