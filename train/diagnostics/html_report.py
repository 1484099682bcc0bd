"""One self-contained HTML page (plots inlined as PNG): the job's story (story.py: data, hyperparameters,
accuracy, per-class accuracy, confusion matrix), then the rules (what each checks, what it found, what to
do), then the profile: the step-time table, four plots and the trace.

    1. training vs validation loss     per-step training loss, its moving average, per-epoch validation loss
    2. gradient norms per layer group  L2 norm of stem, layer1..4 and head gradients, every step, log scale
    3. step-time breakdown             data wait / forward / backward / optimizer per step, stacked
    4. utilisation over time           CPU, memory and (when present) GPU and GPU memory, in %
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from train.diagnostics import story as job_story
from train.diagnostics.record import PHASES, RunRecord
from train.diagnostics.rules import ISSUES, NO_ISSUES, RuleResult

STATUS_COLOURS = {ISSUES: "#c62828", NO_ISSUES: "#2e7d32"}


def render(record: RunRecord, results: list[RuleResult], title: str, story: job_story.Story | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    figures = [("Training vs validation loss", _loss_plot(record)),
               ("Gradient norms per layer group", _gradient_plot(record)),
               ("Step-time breakdown", _step_time_plot(record)),
               ("Utilisation over time", _utilisation_plot(record))]
    rows = "\n".join(
        f"<tr><td>{html.escape(r.rule)}</td><td style='color:{STATUS_COLOURS.get(r.status, '#616161')};"
        f"font-weight:bold'>{r.status}</td><td>{html.escape(job_story.rule_guide(r.rule)[0])}</td>"
        f"<td>{html.escape(r.message)}</td>"
        f"<td>{html.escape(job_story.rule_guide(r.rule)[1]) if r.status == ISSUES else ''}</td>"
        f"<td><code>{html.escape(', '.join(f'{k}={v}' for k, v in r.parameters.items()))}</code></td></tr>"
        for r in results)
    told = job_story.render(story, _confusion_picture(story)) if story is not None else ""
    sections = "\n".join(
        f"<h2>{html.escape(name)}</h2>" + (f"<img alt='{html.escape(name)}' src='data:image/png;base64,{png}'>"
                                           if png else "<p>No data for this plot in this run.</p>")
        for name, png in figures)
    summary = _phase_summary(record)
    trace = (f"<h2>torch.profiler: top operators</h2><pre>{html.escape(record.torch_profile_table)}</pre>"
             if record.torch_profile_table else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#212121}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ddd;padding:4px 8px;vertical-align:top}}
table.narrow{{width:auto}}table.matrix td{{text-align:right}}td.hit{{background:#c8e6c9}}td.miss{{background:#ffcdd2}}
p.issue{{color:#c62828}}p.lead{{font-size:1.15em}}img{{max-width:100%}}code,pre{{font-size:12px}}
div.gallery{{display:flex;flex-wrap:wrap;gap:8px}}figure.mistake{{margin:0;width:140px;font-size:12px}}
figure.mistake img{{display:block;margin:auto}}div.nothumb{{height:112px;background:#eee;color:#757575;padding:8px}}
</style></head><body>
<h1>{html.escape(title)}</h1>
{told}
<h2>Rules</h2>
<table><tr><th>rule</th><th>status</th><th>checks</th><th>found</th><th>what to do</th><th>parameters</th></tr>
{rows}
</table>
<h2>Profile</h2>
{summary}
{sections}
{trace}
</body></html>
"""


def _confusion_picture(story: job_story.Story | None) -> str | None:
    """The whole matrix as a heatmap of counts (log colour scale), for more classes than a table can show."""
    if story is None or len(story.classes) <= job_story.MAX_MATRIX_CLASSES:
        return None
    from matplotlib.colors import LogNorm

    counts = np.array(story.confusion, dtype=float)
    fig, ax = _figure()
    fig.set_size_inches(9, 9)
    image = ax.imshow(np.where(counts > 0, counts, np.nan), cmap="viridis",
                      norm=LogNorm(vmin=1, vmax=max(1.0, counts.max())))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_xlabel("predicted class (index in evaluation.json's classes)")
    ax.set_ylabel("true class")
    return _png(fig)


def _phase_summary(record: RunRecord) -> str:
    if not record.steps:
        return ""
    means = {phase: 1000 * float(np.mean([step.seconds.get(phase, 0.0) for step in record.steps]))
             for phase in PHASES}
    total = sum(means.values()) or 1e-12
    cells = "".join(f"<tr><td>{phase}</td><td>{ms:.1f}</td><td>{100 * ms / total:.0f}%</td></tr>"
                    for phase, ms in means.items())
    return (f"<h2>Mean training step: {total:.1f} ms over {len(record.steps)} steps</h2>"
            f"<table><tr><th>phase</th><th>ms</th><th>share</th></tr>{cells}</table>")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure():
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(10, 3.6))


def _loss_plot(record: RunRecord) -> str | None:
    if not record.steps:
        return None
    fig, ax = _figure()
    steps = [step.step for step in record.steps]
    losses = np.array([step.loss for step in record.steps], dtype=float)
    ax.plot(steps, losses, color="#90caf9", linewidth=0.8, label="training loss (step)")
    span = max(1, len(losses) // 20)
    if len(losses) > span:
        smooth = np.convolve(losses, np.ones(span) / span, mode="valid")
        ax.plot(steps[span - 1:], smooth, color="#1565c0", label=f"training loss ({span}-step mean)")
    if record.epochs:
        ax.plot([e.last_step for e in record.epochs], [e.valid_loss for e in record.epochs], "o-",
                color="#ef6c00", label="validation loss (epoch)")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    return _png(fig)


def _gradient_plot(record: RunRecord) -> str | None:
    groups = sorted({group for g in record.gradients for group in g.group_norms})
    if not groups:
        return None
    fig, ax = _figure()
    for group in groups:
        points = [(g.step, g.group_norms[group]) for g in record.gradients if group in g.group_norms]
        ax.plot(*zip(*points, strict=True), linewidth=0.9, label=group)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient L2 norm")
    ax.legend(ncol=3, fontsize=8)
    return _png(fig)


def _step_time_plot(record: RunRecord) -> str | None:
    if not record.steps:
        return None
    fig, ax = _figure()
    steps = [step.step for step in record.steps]
    stacks = [[1000 * step.seconds.get(phase, 0.0) for step in record.steps] for phase in PHASES]
    ax.stackplot(steps, stacks, labels=PHASES, colors=["#ef5350", "#42a5f5", "#66bb6a", "#ffca28"], step="mid")
    ax.set_xlabel("training step")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _utilisation_plot(record: RunRecord) -> str | None:
    if not record.system:
        return None
    fig, ax = _figure()
    seconds = [x.seconds for x in record.system]
    ax.plot(seconds, [x.cpu_percent for x in record.system], label="CPU %")
    ax.plot(seconds, [x.memory_percent for x in record.system], label="memory %")
    gpus = min((len(x.gpu_percent) for x in record.system), default=0)
    for gpu in range(gpus):
        ax.plot(seconds, [x.gpu_percent[gpu] for x in record.system], label=f"GPU {gpu} %")
        ax.plot(seconds, [x.gpu_memory_percent[gpu] for x in record.system], linestyle="--",
                label=f"GPU {gpu} memory %")
    ax.set_ylim(0, 105)
    ax.set_xlabel("seconds since training started")
    ax.set_ylabel("%")
    ax.legend(ncol=3, fontsize=8)
    return _png(fig)
