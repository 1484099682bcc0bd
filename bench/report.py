"""How every benchmark prints: a heading, then rows of what / ours / baseline / ratio, then the baseline."""

from __future__ import annotations


def print_table(heading: str, rows: list[tuple[str, float, float]], baseline: str) -> None:
    width = max(len(what) for what, _, _ in rows)
    print(f"\n{heading}")
    print(f"{'what':{width}} {'ours':>10} {'baseline':>10} {'ratio':>7}")
    for what, ours, theirs in rows:
        print(f"{what:{width}} {ours:10.1f} {theirs:10.1f} {ours / theirs:6.2f}x")
    print(f"baseline: {baseline}")
