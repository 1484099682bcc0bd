"""The evaluation report in SM_OUTPUT_DATA_DIR (SageMaker uploads it as output.tar.gz).

    evaluation.json        overall and per-class accuracy, the confusion matrix, per-epoch history
    confusion_matrix.png   rows: true class, columns: predicted class (row-normalised)
    skipped_files.json     every file that was skipped, with the reason
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from train.data import Split


def per_class_accuracy(confusion: torch.Tensor, classes: list[str]) -> list[dict]:
    totals = confusion.sum(1)
    return [
        {"class": name, "images": int(totals[i]),
         "accuracy": (float(confusion[i, i] / totals[i]) if totals[i] else None)}
        for i, name in enumerate(classes)
    ]


def write_report(output_dir: Path, *, classes: list[str], split_name: str, loss: float, accuracy: float,
                 confusion: torch.Tensor, history: list[dict], splits: list[Split]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    skipped = {split.name: [{"path": f.path, "reason": f.reason} for f in split.skipped] for split in splits}
    evaluation = {
        "split": split_name,
        "loss": loss,
        "accuracy": accuracy,
        "per_class": per_class_accuracy(confusion, classes),
        "confusion_matrix": confusion.tolist(),
        "classes": classes,
        "history": history,
        "files": {split.name: {"used": len(split.samples), "skipped": len(split.skipped),
                               "ignored": len(split.ignored)} for split in splits},
        "ignored_files": {split.name: split.ignored for split in splits if split.ignored},  # no images
    }
    (output_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    (output_dir / "skipped_files.json").write_text(json.dumps(skipped, indent=2) + "\n")
    plot_confusion(confusion, classes, f"{split_name} accuracy {accuracy:.3f}", output_dir / "confusion_matrix.png")


def plot_confusion(confusion: torch.Tensor, classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.double()
    rates = (counts / counts.sum(1, keepdim=True).clamp(min=1)).numpy()
    n = len(classes)
    size = min(24.0, max(5.0, 0.16 * n + 3))
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    image = ax.imshow(rates, cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 40:  # 133 breed names would be unreadable; the JSON has them
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
