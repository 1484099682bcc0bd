"""How every benchmark prints: a heading, then rows of what / ours / baseline / ratio, then the baseline.

Every table printed is also kept, so `python -m bench` can end with one summary of all of them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    topic: str
    what: str
    ours: float
    baseline: float
    baseline_is: str


PRINTED: list[Row] = []


def print_table(heading: str, rows: list[tuple[str, float, float]], baseline: str) -> None:
    width = max(len(what) for what, _, _ in rows)
    print(f"\n{heading}")
    print(f"{'what':{width}} {'ours':>10} {'baseline':>10} {'ratio':>7}")
    for what, ours, theirs in rows:
        print(f"{what:{width}} {ours:10.1f} {theirs:10.1f} {ours / theirs:6.2f}x")
        PRINTED.append(Row(heading.split(":")[0].split(" (")[0], what, ours, theirs, baseline))
    print(f"baseline: {baseline}")


def print_summary(rows: list[Row]) -> None:
    """One table of every row: what, ours, baseline, ratio, and which baseline (defined below it)."""
    baselines = list(dict.fromkeys(row.baseline_is for row in rows))
    names = [f"{row.topic}: {row.what}" for row in rows]
    width = max(len(name) for name in names)
    print(f"\nsummary: every benchmark of this run\n{'what':{width}} {'ours':>10} {'baseline':>10} {'ratio':>7}  "
          "baseline is")
    for name, row in zip(names, rows, strict=True):
        print(f"{name:{width}} {row.ours:10.1f} {row.baseline:10.1f} {row.ours / row.baseline:6.2f}x  "
              f"[{baselines.index(row.baseline_is) + 1}]")
    for number, definition in enumerate(baselines, start=1):
        print(f"[{number}] {definition}")
