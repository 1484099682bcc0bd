"""The first part of report.html: what the job was and what it made, before any rule or profile.

Job, date, data (images per split, skipped, ignored), hyperparameters, the shipped model's accuracy,
per-class accuracy (worst first) and the confusion matrix as counts: a table of counts up to
MAX_MATRIX_CLASSES classes, else the classes' most frequent confusions (true -> predicted, with
counts) and the matrix as a picture; at 133 dog breeds a 133-column table is unreadable.
Then, for every rule, what it checks and what to do when it finds something (RULE_GUIDE).
"""

from __future__ import annotations

import dataclasses
import html

MAX_MATRIX_CLASSES = 20
TOP_CONFUSIONS = 25
SHOWN_CLASSES = 15  # per-class rows shown before the rest folds away

# What each rule checks, and what to do about an issue: SageMaker's own rule descriptions, in short.
RULE_GUIDE = {
    "LossNotDecreasing": ("whether the training loss, saved every --loss-interval-steps steps, is stuck from the "
                          "start or rises by more than increase_threshold_percent",
                          "raise the learning rate if the loss never moved; lower it if the loss jumps about; "
                          "check that the labels match the images"),
    "Overfit": ("whether the validation loss runs ahead of the training loss by more than ratio_threshold",
                "more data or augmentation (--augment true), fewer epochs, a frozen backbone, a smaller head"),
    "Overtraining": ("whether the validation loss stopped improving while the training loss still falls",
                     "train fewer epochs: the job already ships its best epoch's model"),
    "VanishingGradient": ("whether any layer's mean |gradient| fell below threshold",
                          "a lower learning rate (dead ReLUs), or unfreeze the backbone if only the head learns"),
    "ExplodingTensor": ("whether a loss or gradient became NaN or infinite",
                        "a lower learning rate; check the starting weights for NaN"),
    "PoorWeightInitialization": ("whether the activations' variance differs widely between layers at the start",
                                 "start from ImageNet weights (--weights imagenet) or a known-good checkpoint"),
    "ClassImbalance": ("whether the largest train class dwarfs the smallest, or a class is mostly mispredicted",
                       "collect more images of the small classes, or oversample them"),
    "LowGPUUtilization": ("whether the GPU sat mostly idle (p95 utilisation under threshold_p95)",
                          "a larger --batch-size, more --num-workers, or a smaller (cheaper) instance"),
    "CPUBottleneck": ("whether the GPU waited on the data loader more than threshold % of the time",
                      "more --num-workers, smaller source images, or --cache-features with a frozen backbone"),
    "StepOutlier": ("whether more than n_outliers steps took longer than mean + stddev x standard deviation",
                    "look for huge images in the data or a busy neighbour on the host; a few at start-up are "
                    "normal"),
}


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    name: str
    used: int
    skipped: int
    ignored: int


@dataclasses.dataclass(frozen=True)
class Story:
    job: str
    date: str  # UTC, ISO 8601
    splits: list[SplitCounts]
    hyperparameters: dict
    split_name: str  # where the shipped model's accuracy was measured: test, else valid
    accuracy: float
    loss: float
    best_epoch: int | None
    classes: list[str]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    int8: dict | None = None  # model.json's "int8" entry, when the job quantized
    mistakes: list = dataclasses.field(default_factory=list)  # train.gallery.Mistake, most confident first
    mistakes_total: int = 0  # all the split's misclassified images, shown or not


def render(story: Story, confusion_png: str | None) -> str:
    """HTML for the top of the report; `confusion_png` (base64) is shown for more than MAX_MATRIX_CLASSES."""
    return "\n".join([_job(story), _data(story), _hyperparameters(story), _accuracy(story),
                      _per_class(story), _confusion(story, confusion_png), _mistakes(story)])


def rule_guide(rule: str) -> tuple[str, str]:
    return RULE_GUIDE.get(rule, ("", ""))


def _job(story: Story) -> str:
    classes = len(story.classes)
    return (f"<p class='lead'>Job <b>{html.escape(story.job)}</b>, {html.escape(story.date)}: {classes} classes; "
            f"{story.split_name} accuracy <b>{story.accuracy:.3f}</b> (loss {story.loss:.4f}) of the model from "
            f"epoch {story.best_epoch if story.best_epoch is not None else '-'}, the one the job ships.</p>")


def _data(story: Story) -> str:
    rows = "".join(f"<tr><td>{html.escape(s.name)}</td><td>{s.used}</td><td>{s.skipped}</td><td>{s.ignored}</td>"
                   "</tr>" for s in story.splits)
    return ("<h2>Data</h2><table class='narrow'><tr><th>split</th><th>images used</th><th>skipped (unreadable)</th>"
            f"<th>ignored (no image)</th></tr>{rows}</table><p>skipped_files.json lists every skipped file and why."
            "</p>")


def _hyperparameters(story: Story) -> str:
    cells = "".join(f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(str(v))}</code></td></tr>"
                    for k, v in sorted(story.hyperparameters.items()))
    return f"<h2>Hyperparameters</h2><table class='narrow'>{cells}</table>"


def _right_and_total(story: Story) -> tuple[int, int]:
    return sum(story.confusion[i][i] for i in range(len(story.confusion))), sum(map(sum, story.confusion))


def _accuracy(story: Story) -> str:
    right, total = _right_and_total(story)
    return (f"<h2>Accuracy</h2><p>{story.split_name}: {right} of {total} images right, "
            f"<b>{story.accuracy:.3f}</b> (chance: {1 / max(1, len(story.classes)):.3f}).</p>{_int8(story.int8)}")


def _int8(entry: dict | None) -> str:
    if not entry:
        return "<p>int8 model: not made (--quantize none).</p>"
    if "compared_on" not in entry:
        return f"<p class='issue'>{html.escape(entry['reason'])}.</p>"
    scored = entry["compared_on"]
    numbers = (f"on {scored['images']} {scored['split']} images: accuracy {scored['accuracy_int8']:.3f} against "
               f"{scored['accuracy_fp32']:.3f} for model.onnx, same top-1 answer on {scored['agreement']:.1%}, "
               f"probabilities at most {scored['max_abs_probability_difference']:.4f} apart; calibrated on "
               f"{entry['calibration']['images']} validation images ({entry['calibration']['method']})")
    if entry.get("file"):
        return f"<p>int8 model: <b>{html.escape(entry['file'])}</b> written, {numbers}.</p>{_int8_levels(entry)}"
    return f"<p class='issue'>{html.escape(entry.get('reason', 'int8 model not written'))}; {numbers}.</p>"


def _int8_levels(entry: dict) -> str:
    """Which CPUs serve the int8 model (train/int8_levels.py): the others serve model.onnx."""
    levels = entry.get("levels") or {}
    served = [level for level, check in levels.items() if check.get("checked")]
    others = [f"{level} ({check.get('reason', 'not checked')})" for level, check in levels.items()
              if not check.get("checked")]
    text = f"Served as int8 on: {', '.join(served) or 'no CPU level'}"
    if others:
        text += f"; as float32 on: {'; '.join(others)}"
    return f"<p>{html.escape(text)}.</p>"


def _mistakes(story: Story) -> str:
    """The misclassified images as thumbnails, most confident mistake first (train/gallery.py)."""
    if not story.mistakes_total:
        right, total = _right_and_total(story)
        if right < total:  # a story told without each image's answer: nothing to show
            return ""
        return f"<h2>Misclassified images</h2><p>None: every {html.escape(story.split_name)} image right.</p>"
    figures = []
    for mistake in story.mistakes:
        picture = (f"<img src='data:image/jpeg;base64,{mistake.thumbnail}' alt=''>" if mistake.thumbnail
                   else "<div class='nothumb'>image not readable</div>")
        figures.append(f"<figure class='mistake'>{picture}<figcaption><b>{html.escape(mistake.predicted_class)}"
                       f"</b> {mistake.probability:.0%}<br>true: {html.escape(mistake.true_class)}<br>"
                       f"<small>{html.escape(mistake.file)}</small></figcaption></figure>")
    shown = len(story.mistakes)
    return (f"<h2>Misclassified images</h2><p>{story.mistakes_total} {html.escape(story.split_name)} images wrong"
            f"{f'; the {shown} the model was surest of' if shown < story.mistakes_total else ''}, most confident "
            "first: its answer and probability, the true class, the file.</p>"
            f"<div class='gallery'>{''.join(figures)}</div>")


def per_class_rows(story: Story) -> list[tuple[str, int, float | None]]:
    """evaluation.json's per-class accuracy (train.report.per_class_accuracy), worst first."""
    import torch

    from train.report import per_class_accuracy

    rows = [(c["class"], c["images"], c["accuracy"])
            for c in per_class_accuracy(torch.tensor(story.confusion), story.classes)]
    return sorted(rows, key=lambda row: (row[2] is None, row[2] if row[2] is not None else 0.0, row[0]))


def _per_class(story: Story) -> str:
    rows = per_class_rows(story)

    def table(selected) -> str:
        cells = "".join(f"<tr><td>{html.escape(name)}</td><td>{images}</td>"
                        f"<td>{'-' if accuracy is None else f'{accuracy:.2f}'}</td></tr>"
                        for name, images, accuracy in selected)
        return f"<table class='narrow'><tr><th>class</th><th>images</th><th>accuracy</th></tr>{cells}</table>"

    title = f"<h2>Per-class accuracy ({story.split_name}, worst first)</h2>"
    if len(rows) <= SHOWN_CLASSES:
        return title + table(rows)
    return (f"{title}<p>The {SHOWN_CLASSES} worst of {len(rows)} classes:</p>{table(rows[:SHOWN_CLASSES])}"
            f"<details><summary>all {len(rows)} classes</summary>{table(rows)}</details>")


def top_confusions(story: Story, limit: int = TOP_CONFUSIONS) -> list[tuple[str, str, int]]:
    pairs = [(story.classes[t], story.classes[p], count)
             for t, row in enumerate(story.confusion) for p, count in enumerate(row) if t != p and count]
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))[:limit]


def _confusion(story: Story, confusion_png: str | None) -> str:
    title = f"<h2>Confusion matrix ({story.split_name}: rows true class, columns predicted, counts)</h2>"
    if len(story.classes) <= MAX_MATRIX_CLASSES:
        head = "".join(f"<th>{html.escape(name)}</th>" for name in story.classes)
        body = "".join(
            f"<tr><th>{html.escape(story.classes[t])}</th>"
            + "".join(f"<td class='{'hit' if t == p else ('miss' if count else '')}'>{count}</td>"
                      for p, count in enumerate(row)) + "</tr>"
            for t, row in enumerate(story.confusion))
        return f"{title}<table class='matrix'><tr><th></th>{head}</tr>{body}</table>"
    pairs = "".join(f"<tr><td>{html.escape(true)}</td><td>{html.escape(predicted)}</td><td>{count}</td></tr>"
                    for true, predicted, count in top_confusions(story))
    picture = (f"<img alt='confusion matrix' src='data:image/png;base64,{confusion_png}'>" if confusion_png else "")
    return (f"{title}<p>{len(story.classes)} classes: the most frequent confusions as counts, the whole matrix as a "
            f"picture below (evaluation.json has every count).</p><table class='narrow'><tr><th>true class</th>"
            f"<th>predicted as</th><th>images</th></tr>{pairs or '<tr><td colspan=3>none</td></tr>'}</table>"
            f"{picture}")
