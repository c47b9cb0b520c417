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
"""Reports of N-click evaluation: per-click records summarised over (case, class) curves, CSV, JSON and plot."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric

from .metrics import curve_auc

__all__ = ["RECORD_FIELDS", "summarise", "write_reports", "ClickCurveMetric", "ClickReportWriter"]

logger = logging.getLogger(__name__)
RECORD_FIELDS = ("case", "class_id", "click", "point", "point_label", "dice", "nsd")


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(records: Sequence[dict], best_over_clicks: bool = False) -> dict:
    """Summary of N-click records.

    Args:
        records: one dict per case, class and click (``case``, ``class_id``, ``click``, ``dice``, ``nsd``).
        best_over_clicks: also report the upstream "best Dice over clicks" score.

    Returns:
        ``num_curves``, ``num_clicks``, mean ``dice``/``nsd`` per click, mean ``dice_auc``/``nsd_auc`` (and their
        normalised forms) over the (case, class) curves, ``dice_final``/``nsd_final``, ``per_class`` means, and
        ``best_dice`` when asked.
    """
    curves: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in records:
        curves[(r["case"], int(r["class_id"]))][int(r["click"])] = r
    if not curves:
        raise ValueError("no evaluation records: the datalist produced no case with a class to evaluate.")
    num_clicks = max(max(c) for c in curves.values())
    per_click = {
        metric: [_mean([c[k][metric] for c in curves.values() if k in c]) for k in range(1, num_clicks + 1)]
        for metric in ("dice", "nsd")
    }
    summary: dict = {"num_curves": len(curves), "num_clicks": num_clicks, "per_click": per_click}
    per_curve: dict[str, list] = defaultdict(list)
    per_class: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for (_, class_id), curve in sorted(curves.items()):
        for metric in ("dice", "nsd"):
            series = [curve[k][metric] for k in sorted(curve)]
            series = [0.0 if math.isnan(v) else v for v in series]  # an empty prediction of a present class
            auc, auc_norm = curve_auc(series)
            per_curve[f"{metric}_auc"].append(auc)
            per_curve[f"{metric}_auc_normalised"].append(auc_norm)
            per_curve[f"{metric}_final"].append(series[-1])
            per_class[class_id][f"{metric}_final"].append(series[-1])
            per_class[class_id][f"{metric}_1"].append(series[0])
            if metric == "dice":
                per_curve["best_dice"].append(max(series))
    for key, values in per_curve.items():
        if key != "best_dice" or best_over_clicks:
            summary[key] = _mean(values)
    summary["per_class"] = {
        str(c): {k: _mean(v) for k, v in sorted(m.items())} | {"num_cases": len(m["dice_final"])}
        for c, m in sorted(per_class.items())
    }
    return summary


def _plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    clicks = np.arange(1, summary["num_clicks"] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(clicks, summary["per_click"]["dice"], "o-", label="Dice")
    ax.plot(clicks, summary["per_click"]["nsd"], "s--", label="NSD (1 mm)")
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean score")
    ax.set_ylim(0, 1)
    ax.set_xticks(clicks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{title} ({summary['num_curves']} case-class curves)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_reports(
    records: Sequence[dict], output_dir: str, best_over_clicks: bool = False, prefix: str = "nclick", plot: bool = True
) -> dict:
    """Write ``<prefix>_metrics.csv`` (one row per case, class and click), ``<prefix>_summary.json`` and
    ``<prefix>_dice.png`` (Dice and NSD against clicks) into ``output_dir``.

    Args:
        records: the evaluation records.
        output_dir: destination folder (created).
        best_over_clicks: add the upstream "best over clicks" score to the summary.
        prefix: file name prefix.
        plot: write the PNG (needs matplotlib).

    Returns:
        The summary.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(records, best_over_clicks)
    ordered = sorted(records, key=lambda r: (r["case"], int(r["class_id"]), int(r["click"])))
    with open(out / f"{prefix}_metrics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RECORD_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
    with open(out / f"{prefix}_summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, allow_nan=True)
        f.write("\n")
    if plot:
        _plot(summary, out / f"{prefix}_dice.png", prefix)
    logger.info(
        f"{summary['num_curves']} curves, Dice per click {[round(d, 4) for d in summary['per_click']['dice']]}, "
        f"Dice AUC {summary['dice_auc']:.4f} (normalised {summary['dice_auc_normalised']:.4f}) -> {out}"
    )
    return summary


def _gather(records: list[dict]) -> list[dict]:
    """All ranks' records (every rank gets the full list); the records themselves without DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, records)
        return [r for part in parts for r in part]
    return list(records)


class ClickCurveMetric(Metric):
    """Ignite metric over the records of :class:`~scripts.evaluation.NClickEvaluator`, gathered across ranks.

    ``compute`` returns the mean Dice after the last click (over case-class curves); the gathered records are
    kept in ``engine.state.click_records`` for :class:`ClickReportWriter`.

    Args:
        output_transform: from the evaluator output to the list of records (default: identity).
    """

    def __init__(self, output_transform=lambda x: x) -> None:
        self._records: list[dict] = []
        self.gathered: list[dict] = []
        super().__init__(output_transform=output_transform)

    def reset(self) -> None:
        """Forget the records of the previous run."""
        self._records = []

    def update(self, output: Sequence[dict]) -> None:
        """Add the records of one iteration."""
        self._records.extend(output)

    def compute(self) -> float:
        """Mean final-click Dice over all ranks' curves."""
        self.gathered = _gather(self._records)
        if not self.gathered:
            return float("nan")
        return summarise(self.gathered)["dice_final"]

    def completed(self, engine: Engine, name: str) -> None:
        """Store the value and the gathered records on the engine."""
        super().completed(engine, name)
        engine.state.click_records = self.gathered


class ClickReportWriter:
    """At the end of an evaluation, write the CSV, JSON and PNG reports of ``engine.state.click_records``.

    Attach on rank 0 only (the records are already gathered from every rank by :class:`ClickCurveMetric`).

    Args:
        output_dir: destination folder.
        best_over_clicks: add the upstream "best over clicks" score.
        prefix: file name prefix.
        plot: write the PNG.
    """

    def __init__(self, output_dir: str, best_over_clicks: bool = False, prefix: str = "nclick", plot: bool = True):
        self.output_dir = output_dir
        self.best_over_clicks = best_over_clicks
        self.prefix = prefix
        self.plot = plot

    def attach(self, engine: Engine) -> None:
        """Attach to an evaluator (after its metrics, so that the records are gathered)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        records = getattr(engine.state, "click_records", None)
        if not records:
            raise RuntimeError("no click records on the engine: add ClickCurveMetric as the evaluator's key metric.")
        write_reports(records, self.output_dir, self.best_over_clicks, self.prefix, self.plot)
