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
"""Plot a train.json run's curve (loss and per-round training Dice) from its TensorBoard folder.

    python tools/plot_training_curve.py /tmp/demo/eval/tensorboard bundle/docs/demo_model_curve.png --rows 8

Writes the PNG and prints a Markdown table of ``--rows`` evenly spaced points of the curve (the values are the
progress line's means over each logging interval).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read_scalars(tensorboard_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every ``train/*`` scalar of the event files in ``tensorboard_dir``, as sorted ``(step, value)`` lists."""
    series: dict[str, dict[int, float]] = {}
    for events in sorted(Path(tensorboard_dir).glob("events.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.startswith("train/"):
                series.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    if "train/loss" not in series:
        raise SystemExit(
            f"error: no train/loss scalars under {tensorboard_dir}: pass the tensorboard/ folder of a train.json run "
            "(<output_dir>/tensorboard; a run writes its loss every log_interval iterations and when it ends)."
        )
    return {tag: sorted(values.items()) for tag, values in series.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tensorboard_dir", type=Path)
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--rows", type=int, default=8, help="rows of the printed Markdown table")
    args = parser.parse_args()
    series = read_scalars(args.tensorboard_dir)
    rounds = sorted((t for t in series if t.startswith("train/dice_round_")), key=lambda t: int(t.rsplit("_", 1)[1]))

    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    steps, loss = zip(*series["train/loss"])
    ax_loss.plot(steps, loss)
    ax_loss.set(xlabel="iteration", ylabel="loss (sum over rounds)", title="training loss")
    for tag in rounds:
        ax_dice.plot(*zip(*series[tag]), label=f"round {tag.rsplit('_', 1)[1]}")
    ax_dice.set(
        xlabel="iteration", ylabel="Dice (logits > 0, 128^3 window)", title="training Dice per round", ylim=(0, 1)
    )
    ax_dice.legend()
    fig.tight_layout()
    fig.savefig(args.out_png, dpi=80)

    dice = {tag: dict(series[tag]) for tag in rounds}
    picks = sorted({steps[round(i * (len(steps) - 1) / max(args.rows - 1, 1))] for i in range(args.rows)})
    loss_at = dict(series["train/loss"])
    print("| iteration | loss | " + " | ".join(f"Dice round {t.rsplit('_', 1)[1]}" for t in rounds) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in rounds) + " |")
    for step in picks:
        print(f"| {step} | {loss_at[step]:.3f} | " + " | ".join(f"{dice[t][step]:.3f}" for t in rounds) + " |")


if __name__ == "__main__":
    main()
