"""report.html opens with the job's story, then the rules with what to do, then the profile.

Rendered from made-up numbers here (133 dog breeds, the flagship's size, and 4 classes); a real run's
report is checked in tests/test_readme.py. What a person sees was checked with a headless browser
screenshot (docs/training.md, "The training report").
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from train.diagnostics.html_report import render
from train.diagnostics.record import RunRecord
from train.diagnostics.rules import ISSUES, NO_ISSUES, RuleResult
from train.diagnostics.story import RULE_GUIDE, SplitCounts, Story, per_class_rows, top_confusions
from train.diagnostics.story import render as render_story

RESULTS = [RuleResult("Overfit", ISSUES, "epoch 3: validation loss 0.9 is 50% above training loss 0.6", {}),
           RuleResult("LossNotDecreasing", NO_ISSUES, "mean training loss fell in every window", {"num_steps": 10})]


def story(classes: int, seed: int = 0) -> Story:
    rng = np.random.default_rng(seed)
    confusion = np.diag(rng.integers(3, 9, classes))
    for _ in range(classes):  # some mistakes, a few of them repeated
        confusion[rng.integers(classes), rng.integers(classes)] += 1
    confusion[5 % classes, 7 % classes] += 4 if classes > 7 else 0  # the most frequent confusion
    names = [f"Breed {i:03d}" for i in range(classes)]
    accuracy = float(np.trace(confusion) / confusion.sum())
    return Story(job="dog-debug-251130-1300", date="2026-11-30 13:00 UTC",
                 splits=[SplitCounts("train", 6680, 0, 1), SplitCounts("valid", 835, 0, 0),
                         SplitCounts("test", 836, 2, 0)],
                 hyperparameters={"lr": 0.001, "batch_size": 64, "arch": "resnet50"}, split_name="test",
                 accuracy=accuracy, loss=0.71, best_epoch=4, classes=names, confusion=confusion.tolist())


def headings(page: str) -> list[str]:
    return [re.sub("<.*?>", "", h) for h in re.findall(r"<h2>(.*?)</h2>", page)]


def test_a_133_class_report_tells_the_story_first():
    told = story(133)
    page = render(RunRecord(device="cpu"), RESULTS, "Training report", told)
    order = [h.split(" (")[0] for h in headings(page)]
    assert order[:7] == ["Data", "Hyperparameters", "Accuracy", "Per-class accuracy", "Confusion matrix", "Rules",
                         "Profile"], order
    assert page.index("dog-debug-251130-1300") < page.index("<h2>Data")  # the job, first
    assert f"{told.accuracy:.3f}" in page and "836" in page and "ignored (no image)" in page
    # per-class: the worst classes shown, every class folded away below them, worst first
    every = page[page.index("<details><summary>all 133 classes</summary>"):].split("</details>")[0]
    rows = re.findall(r"<tr><td>(Breed \d{3})</td><td>\d+</td><td>([0-9.]+)</td></tr>", every)
    assert len(rows) == 133 and [float(a) for _, a in rows] == sorted(float(a) for _, a in rows)
    assert rows[0][0] == per_class_rows(told)[0][0]
    shown = page[page.index("<h2>Per-class"):page.index("<details>")]
    assert shown.count("<tr><td>Breed") == 15 and "The 15 worst of 133 classes" in shown
    # the confusions as counts (Breed 005 -> 007 the most frequent), and the whole matrix as a picture
    assert top_confusions(told)[0][:2] == ("Breed 005", "Breed 007")
    assert "<td>Breed 005</td><td>Breed 007</td><td>" in page and "data:image/png;base64," in page
    assert "<table class='matrix'>" not in page  # no 133-column table


def test_every_rule_says_what_it_checks_and_a_finding_says_what_to_do():
    page = render(RunRecord(device="cpu"), RESULTS, "Training report", story(4))
    overfit = page[page.index("<td>Overfit</td>"):].split("</tr>")[0]
    assert RULE_GUIDE["Overfit"][0] in overfit and RULE_GUIDE["Overfit"][1] in overfit
    quiet = page[page.index("<td>LossNotDecreasing</td>"):].split("</tr>")[0]
    assert RULE_GUIDE["LossNotDecreasing"][0] in quiet and RULE_GUIDE["LossNotDecreasing"][1] not in quiet
    assert set(RULE_GUIDE) >= {"LossNotDecreasing", "Overfit", "Overtraining", "VanishingGradient",
                               "ExplodingTensor", "PoorWeightInitialization", "ClassImbalance", "LowGPUUtilization",
                               "CPUBottleneck", "StepOutlier"}


def test_a_few_classes_get_the_matrix_as_a_table_of_counts():
    told = story(4)
    page = render(RunRecord(device="cpu"), [], "Training report", told)
    matrix = page[page.index("<table class='matrix'>"):].split("</table>")[0]
    assert matrix.count("<tr>") == 5 and matrix.count("class='hit'") == 4
    for t, row in enumerate(told.confusion):
        assert f"<td class='hit'>{row[t]}</td>" in matrix


def test_the_story_says_what_became_of_the_int8_model():
    compared = {"split": "test", "images": 836, "accuracy_fp32": 0.81, "accuracy_int8": 0.74, "agreement": 0.9,
                "max_abs_probability_difference": 0.31}
    calibration = {"split": "valid", "images": 256, "method": "MinMax"}
    written = {"file": "model.int8.onnx", "compared_on": compared, "calibration": calibration}
    refused = {**written, "file": None, "reason": "int8 model not written: top-1 agreement 90.00% < 98%"}
    skipped = {"file": None, "reason": "int8 model not made: the float model's outputs are not finite"}
    pages = {name: render_story(dataclasses.replace(story(4), int8=entry), None)
             for name, entry in (("none", None), ("written", written), ("refused", refused), ("skipped", skipped))}
    assert "int8 model: not made (--quantize none)." in pages["none"]
    assert "int8 model: <b>model.int8.onnx</b> written, on 836 test images: accuracy 0.740 against 0.810" \
        in pages["written"]
    assert "<p class='issue'>int8 model not written: top-1 agreement 90.00% &lt; 98%; on 836 test images" \
        in pages["refused"]
    assert "<p class='issue'>int8 model not made: the float model&#x27;s outputs are not finite.</p>" \
        in pages["skipped"]


def test_the_report_shows_the_most_confident_mistakes_as_thumbnails(tmp_path):
    import base64
    import io

    import torch
    from PIL import Image

    from train.gallery import THUMBNAIL_PX, worst_mistakes

    classes = ["Akita", "<script>alert(1)</script>", "Beagle"]  # class names are folder names: the data's
    samples = []
    for index, label in enumerate([0, 1, 2, 0, 1]):
        folder = tmp_path / f"{label + 1:03d}.{classes[label][:5].strip('<')}"
        folder.mkdir(exist_ok=True)
        path = folder / f"photo_{index}.jpg"
        Image.new("RGB", (400, 300), (40 * index, 90, 160)).save(path)
        samples.append((path, label))
    samples[4][0].unlink()  # gone since training read it (a features-only job has no images at all)
    # image 0 right; 1 wrong at 0.6; 2 wrong at 0.9; 3 right; 4 wrong at 0.95, file gone
    predictions = torch.tensor([[0, 0.8], [2, 0.6], [0, 0.9], [0, 0.7], [0, 0.95]], dtype=torch.float64)
    shown, total = worst_mistakes(samples, predictions, classes, limit=2)
    assert total == 3 and [m.probability for m in shown] == [0.95, 0.9]  # the surest first, at most `limit`
    assert shown[0].thumbnail is None and shown[0].file.endswith("/photo_4.jpg")
    picture = Image.open(io.BytesIO(base64.b64decode(shown[1].thumbnail)))
    assert picture.format == "JPEG" and max(picture.size) == THUMBNAIL_PX
    assert (shown[1].true_class, shown[1].predicted_class) == ("Beagle", "Akita")
    page = render_story(dataclasses.replace(story(3), classes=classes, mistakes=shown, mistakes_total=total), None)
    gallery = page[page.index("<h2>Misclassified images</h2>"):]
    assert "3 test images wrong; the 2 the model was surest of, most confident first" in gallery
    assert gallery.count("<figure class='mistake'>") == 2 and "image not readable" in gallery
    assert "data:image/jpeg;base64," in gallery and "<script>" not in page  # names escaped
    perfect = dataclasses.replace(story(3), confusion=[[5, 0, 0], [0, 4, 0], [0, 0, 6]])
    assert "None: every test image right." in render_story(perfect, None)
    assert "Misclassified images" not in render_story(story(133), None)  # mistakes, but no answer per image kept
