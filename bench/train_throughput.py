"""Training images/s: this project's pipeline and step against the original Udacity project's way, same data, same run.

Baseline (the original Udacity project's train.py): torchvision ImageFolder (PIL full decode), RandomResizedCrop +
flip + ToTensor + Normalize in the loader, DataLoader defaults (no workers), fp32, the frozen
backbone still run in train mode. Ours: the `train` package's dataset (JPEG draft decode,
uint8 batches normalised on the device), loader workers, frozen backbone under no_grad.

Also reports the input pipeline alone (decode + transform, no model), where the JPEG draft
decode matters most: the second of two passes, timed whole, so loader workers are started and
nothing was prefetched before the clock starts. And the training step's achieved GFLOP/s (FLOPs
counted by torch's FlopCounterMode on one step, batches in memory) as a fraction of a large
fp32 matmul's GFLOP/s measured in the same run. Prints numbers; asserts nothing.

    python -m bench.train_throughput [--quick]
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms as v1

from bench.cli import benchmark_parser
from bench.report import print_table
from support.photos import make_photos
from train.data import EpochSampler, ImageFolderDataset
from train.engine import Precision, RunningTotals, train_one_epoch
from train.hyperparameters import default_num_workers
from train.network import IMAGENET_MEAN, IMAGENET_STD, Normalize, Preprocess, build_classifier, train_transform
from train.progress import Progress


def baseline_loader(root: Path, image_size: int, batch_size: int):
    transform = v1.Compose([
        v1.RandomResizedCrop(image_size),
        v1.RandomHorizontalFlip(),
        v1.ToTensor(),
        v1.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    dataset = torchvision.datasets.ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def our_loader(root: Path, image_size: int, batch_size: int, workers: int):
    preprocess = Preprocess.for_image_size(image_size)
    folders = sorted(p.name for p in root.iterdir())
    samples = [(path, label) for label, folder in enumerate(folders) for path in sorted((root / folder).iterdir())]
    dataset = ImageFolderDataset(samples, train_transform(preprocess, augment=True), preprocess.resize)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(samples), True, 0),
                                       num_workers=workers, prefetch_factor=4 if workers else None,
                                       persistent_workers=workers > 0)


def pipeline_images_per_second(loader) -> float:
    """A whole second pass: the first starts the workers and warms the page cache, and timing all of
    the second leaves no batch prefetched before the clock (32 photos in 2 batches once timed 82,800/s)."""
    for _ in loader:
        pass
    count, started = 0, time.perf_counter()
    for _, labels in loader:
        count += labels.numel()
    return count / (time.perf_counter() - started)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """What this CPU's BLAS reaches on a large fp32 matmul: the yardstick for the training step."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def step_gflops(arch: str, image_size: int, batch_size: int, freeze: bool, steps: int = 3) -> float:
    """Achieved GFLOP/s of our training step (engine path: channels_last, Normalize on the device)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_classifier(arch, 4, 256, None, freeze_backbone=freeze).to(memory_format=torch.channels_last)
    precision = Precision.for_device(torch.device("cpu"))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.001)
    normalize = Normalize()
    images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.randint(0, 4, (batch_size,))
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(precision.prepare(images, normalize)), labels).backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    best = min(_seconds(step) for _ in range(steps))
    return counter.get_total_flops() / best / 1e9


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def images_per_second(loader, model_step=None, warmup_batches: int = 1) -> float:
    """One pass over the loader, timing everything after the warm-up batches."""
    count, started = 0, None
    for index, (images, labels) in enumerate(loader):
        if model_step is not None:
            model_step(images, labels)
        if index + 1 == warmup_batches:
            started = time.perf_counter()
        elif index + 1 > warmup_batches:
            count += labels.numel()
    return count / (time.perf_counter() - started)


def baseline_step(arch: str, num_classes: int, hidden: int):
    model = torchvision.models.get_model(arch, weights=None)
    for parameter in model.parameters():
        parameter.requires_grad = False
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    optimizer = torch.optim.Adam(model.fc.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    model.train()

    def step(images, labels):
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


def our_epoch(loader, arch: str, num_classes: int, hidden: int) -> float:
    model = build_classifier(arch, num_classes, hidden, None, freeze_backbone=True)
    precision = Precision.for_device(torch.device("cpu"))
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.001)
    normalize = Normalize()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    # Warm up like the baseline (one batch), then time a full epoch through the real engine.
    first_images, first_labels = next(iter(loader))
    warm = RunningTotals()
    model.train()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(precision.prepare(first_images, normalize)), first_labels).backward()
    started = time.perf_counter()
    totals = train_one_epoch(model, loader, optimizer, scaler, precision, normalize, warm, 0, lambda: False,
                             Progress("bench", len(loader), enabled=False))
    return totals.count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.train_throughput", __doc__, "fewer, smaller runs (CI)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--workers", type=int, default=default_num_workers())
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.image_size, args.batch_size = 48, 128, 8
    if args.smoke:
        args.images, args.image_size, args.batch_size, args.arch = 8, 64, 4, "resnet18"
    torch.manual_seed(0)
    classes, hidden = 4, 256
    with tempfile.TemporaryDirectory() as tmp:
        root = make_photos(Path(tmp) / "photos", args.images, classes)
        rows = []
        base_pipe = pipeline_images_per_second(baseline_loader(root, args.image_size, args.batch_size))
        ours_pipe = pipeline_images_per_second(our_loader(root, args.image_size, args.batch_size, args.workers))
        ours_pipe_inline = pipeline_images_per_second(our_loader(root, args.image_size, args.batch_size, 0))
        rows.append((f"input pipeline, {args.workers} workers vs 0", ours_pipe, base_pipe))
        rows.append(("input pipeline, both 0 workers (decode)", ours_pipe_inline, base_pipe))
        base_train = images_per_second(baseline_loader(root, args.image_size, args.batch_size),
                                       baseline_step(args.arch, classes, hidden))
        ours_train = our_epoch(our_loader(root, args.image_size, args.batch_size, args.workers), args.arch,
                               classes, hidden)
        rows.append((f"training, frozen {args.arch} + head", ours_train, base_train))
    matmul = matmul_gflops()
    flops_rows = [(f"training step GFLOP/s, {'frozen' if freeze else 'trainable'} {args.arch} vs 2048^3 matmul",
                   step_gflops(args.arch, args.image_size, args.batch_size, freeze), matmul)
                  for freeze in (True, False)]
    print_table(f"training throughput (images/s): {args.images} JPEGs 500x375..3000x2000, {args.image_size} px crops, "
                f"batch {args.batch_size}, {args.workers} loader workers (ours), {platform.machine()} x "
                f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads", rows,
                "the original Udacity project's loop - ImageFolder + PIL full decode + torchvision transforms, "
                "DataLoader defaults (0 workers), fp32, frozen backbone in train mode")
    print_table(f"training step compute (GFLOP/s): batch {args.batch_size} in memory, {args.image_size} px, best of 3 "
                "steps; ratio = the fraction of the matmul's rate the step reaches", flops_rows,
                "torch.mm of two 2048x2048 fp32 matrices, best of 5, same run (this CPU's BLAS near its peak)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
