"""`python -m train.tune`: the SageMaker tuner's search space, tuned on this machine with Optuna, for free.

The frozen backbone's features of train and valid are computed once (the eval transform, as
the feature cache does); each trial then trains only a new head on them (Adam, the trial's lr
and batch size, --epochs epochs, seeded like a job) and scores its best validation accuracy:
the tuning job's objective, which a job prints last (`METRIC best_epoch=N`) and ships. Optuna's
TPE sampler picks the trials and its median pruner stops weak ones early (SageMaker's early
stopping "Auto" does much the same). Prints a table of the
trials and the best hyperparameters as `-p` flags for scripts/debug_profile.py.

It applies to the default job (--freeze-backbone true): with a trainable backbone every trial
would have to train from images; use scripts/tune.py for that.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from train.errors import TrainingError, UsageError
from train.hyperparameters import ARCHITECTURES, PathOverrides, _bounded, _Parser, _weights, default_num_workers

log = logging.getLogger("train.tune")

# The search space scripts/tune.py gives SageMaker (the original Udacity project's)
DEFAULT_LR_RANGE = (0.001, 0.1)
DEFAULT_BATCH_SIZES = (32, 64, 128, 256, 512)


def batch_sizes(value: str) -> list[int]:
    try:
        sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {value!r}") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"expected distinct positive batch sizes, got {value!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m train.tune", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="one folder holding train/ valid/ (test/)")
    parser.add_argument("--trials", type=_bounded(int, 1, 10000), default=20)
    parser.add_argument("--epochs", type=_bounded(int, 1, 10000), default=5, help="epochs per trial")
    parser.add_argument("--lr-range", type=_bounded(float, 1e-8, 10.0), nargs=2, metavar=("MIN", "MAX"),
                        default=DEFAULT_LR_RANGE, help="searched on a log scale")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=list(DEFAULT_BATCH_SIZES),
                        help="comma-separated choices")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="resnet50")
    parser.add_argument("--weights", type=_weights, default="imagenet")
    parser.add_argument("--pretrained-dir", type=Path)
    parser.add_argument("--image-size", type=_bounded(int, 32, 1024), default=224)
    parser.add_argument("--hidden-units", type=_bounded(int, 1, 65536), default=256)
    parser.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1), default=42)
    parser.add_argument("--num-workers", type=_bounded(int, 0, 256), default=default_num_workers())
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    low, high = args.lr_range
    if not low < high:
        raise UsageError(f"--lr-range: MIN must be below MAX, got {low} {high}")
    return args


def features_once(args):
    """(train features, train labels, valid features, valid labels, classes, precision)."""
    import torch

    from train.engine import Precision
    from train.environment import read_environment
    from train.features import backbone_features
    from train.job_data import prepare_data

    env = read_environment(os.environ, PathOverrides(data_dir=args.data_dir, pretrained_dir=args.pretrained_dir))
    data = prepare_data(env, threads=max(1, args.num_workers))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, computed = backbone_features({name: data.splits[name] for name in ("train", "valid")}, arch=args.arch,
                                    weights=args.weights, pretrained_dir=env.pretrained_dir,
                                    image_size=args.image_size, seed=args.seed, device=device,
                                    num_workers=args.num_workers)
    return (*computed["train"], *computed["valid"], data.classes, Precision.for_device(device))


def tune(args) -> list[dict]:
    import optuna
    import torch

    from train.data import EpochSampler
    from train.engine import RunningTotals, evaluate, train_one_epoch
    from train.features import FEATURE_BATCH, FeatureBatches
    from train.network import build_head
    from train.progress import Progress

    started = time.perf_counter()
    train_x, train_y, valid_x, valid_y, classes, precision = features_once(args)
    log.info("features of %d train and %d valid images computed once in %.1f s", len(train_y), len(valid_y),
             time.perf_counter() - started)
    quiet = Progress("trial", 0, enabled=False)
    scaler = torch.amp.GradScaler(precision.device.type, enabled=False)  # features are float32: no autocast

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", *args.lr_range, log=True)
        batch_size = trial.suggest_categorical("batch_size", args.batch_sizes)
        torch.manual_seed(args.seed)
        head = build_head(train_x.shape[1], args.hidden_units, len(classes)).to(precision.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=lr)
        valid = FeatureBatches(valid_x, valid_y, EpochSampler(len(valid_y), shuffle=False, seed=0), FEATURE_BATCH,
                               drop_last=False)
        best = 0.0
        for epoch in range(args.epochs):
            sampler = EpochSampler(len(train_y), shuffle=True, seed=args.seed)
            sampler.set_epoch(epoch)
            batches = FeatureBatches(train_x, train_y, sampler, batch_size, drop_last=len(train_y) >= batch_size)
            train_one_epoch(head, batches, optimizer, scaler, precision, None, RunningTotals(), 0, lambda: False,
                            quiet)
            accuracy = evaluate(head, valid, precision, None, len(classes), quiet)[1]
            best = max(best, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    study.optimize(objective, n_trials=args.trials)
    return [{"trial": t.number + 1, "lr": t.params["lr"], "batch_size": t.params["batch_size"],
             "valid_accuracy": t.value if t.value is not None else max(t.intermediate_values.values(), default=0.0),
             "state": t.state.name.lower(), "seconds": t.duration.total_seconds()} for t in study.trials]


def print_trials(trials: list[dict]) -> dict:
    print(f"{'trial':>5} {'lr':>10} {'batch-size':>10} {'valid:accuracy':>14} {'seconds':>8}  state")
    for t in trials:
        print(f"{t['trial']:5d} {t['lr']:10.6f} {t['batch_size']:10d} {t['valid_accuracy']:14.4f} "
              f"{t['seconds']:8.2f}  {t['state']}")
    best = max((t for t in trials if t["state"] == "complete"), key=lambda t: t["valid_accuracy"])
    print(f"best: trial {best['trial']}, lr={best['lr']:.6g} batch-size={best['batch_size']} "
          f"valid:accuracy={best['valid_accuracy']:.4f}")
    print(f"train it from images with these: -p lr={best['lr']:.6g} -p batch-size={best['batch_size']}")
    return best


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        print_trials(tune(args))
    except (UsageError, TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
