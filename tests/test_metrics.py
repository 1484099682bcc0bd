"""Metric lines and the tuner regexes are one definition; a regex must read exactly its metric."""

import json
import re
import subprocess
import sys

from conftest import REPO

from train.metrics import METRIC_NAMES, format_metrics, metric_definitions


def values_from(line: str) -> dict[str, float]:
    found = {}
    for definition in metric_definitions():
        match = re.search(definition["Regex"], line)
        if match:
            found[definition["Name"]] = float(match.group(1))
    return found


def test_each_regex_reads_its_own_metric_from_an_epoch_line():
    values = {"train:loss": 1.25, "train:accuracy": 0.5, "valid:loss": 0.75, "valid:accuracy": 0.875,
              "epoch:seconds": 12.5, "train:images_per_second": 321.0}
    assert values_from(format_metrics(values, epoch=3)) == values


def test_regexes_do_not_match_other_metrics_or_non_finite_values():
    assert values_from(format_metrics({"test:accuracy": 0.9})) == {"test:accuracy": 0.9}
    assert values_from(format_metrics({"valid:loss": float("nan"), "valid:accuracy": 0.1})) == {"valid:accuracy": 0.1}


def test_objective_and_names_the_tuner_needs_are_defined():
    names = [d["Name"] for d in metric_definitions()]
    assert {"valid:accuracy", "valid:loss", "test:accuracy"} <= set(names)
    assert names == list(METRIC_NAMES)
    for definition in metric_definitions():
        assert re.compile(definition["Regex"]).groups == 1


def test_print_metric_definitions_is_the_same_json():
    out = subprocess.run([sys.executable, "-m", "train", "--print-metric-definitions"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == metric_definitions()
