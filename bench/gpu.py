"""`python -m bench.gpu` (`make gpu-check`): does the CUDA path work on this machine, and how fast is it?

Run it on any machine with an NVIDIA GPU, in the dev venv or in the training image
(`docker run --gpus all IMAGE python -m bench.gpu`). It prints one table and exits 1 if a check
failed; on a machine without a GPU it says so and exits 0. `--cpu-dry-run` runs the same code on
the CPU with tiny sizes (gloo for NCCL, the GPU-only checks skipped): how the tests keep it working
between GPU machines.

Checks, in one run:
- the stack: device, driver (NVML), torch's CUDA, cuDNN, NCCL; a matmul on the GPU against the CPU
- frozen and trainable ResNet-50 at 224 px through the training loop (`train.engine.train_one_epoch`)
  with its AMP (bf16 where supported, else fp16 with the loss scaler) and channels_last, images/s
  against the original project's plain fp32 loop (NCHW, no autocast) on the same batches
- DDP with NCCL over every GPU (one is fine): an all_reduce and DDP steps that keep replicas equal
- the diagnostics on the frozen run: CUDA-event step phases and NVML samples are recorded, and the
  LowGPUUtilization rule is judged on them (a verdict, not NotApplicable)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch import nn

from train.diagnostics import settings as s
from train.diagnostics.record import PHASES
from train.diagnostics.session import Diagnostics
from train.engine import Precision, RunningTotals, train_one_epoch
from train.gpu import cuda_stack, host_driver
from train.network import Normalize, build_classifier
from train.progress import Progress

OK, FAILED = "ok", "FAILED"


def synthetic_batches(count: int, batch_size: int, size: int, classes: int, pin: bool):
    """uint8 image batches as the loader yields them (pinned on CUDA, so the copies are asynchronous)."""
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator),
                torch.randint(0, classes, (batch_size,), generator=generator)) for _ in range(count)]
    return [(images.pin_memory(), labels.pin_memory()) for images, labels in batches] if pin else batches


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours_images_per_second(device: torch.device, batches, freeze: bool, classes: int,
                           diagnostics_dir: Path | None = None):
    """The training loop as a job runs it; with `diagnostics_dir`, its recorder and system monitor on, the rules
    judged after. Returns (images/s, the run's RunRecord or None, its rule results)."""
    precision = Precision.for_device(device)
    torch.manual_seed(0)
    model = build_classifier("resnet50", classes, 256, None, freeze).to(device, memory_format=torch.channels_last)
    trainable = model.head if freeze else model
    optimizer = torch.optim.Adam([p for p in trainable.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.autocast_dtype == torch.float16)
    normalize = Normalize().to(device)
    diagnostics = None
    if diagnostics_dir is not None:
        # every rule as a job has them; LowGPUUtilization's windows sized for this short run's samples
        rules = tuple(s.LowGPUUtilization(window=5, patience=0) if isinstance(rule, s.LowGPUUtilization) else rule
                      for rule in s.DiagnosticsSettings().rules)
        settings = s.DiagnosticsSettings(sample_interval_ms=100, rules=rules)
        diagnostics = Diagnostics(settings, model, device, [str(i) for i in range(classes)], [1] * classes,
                                  diagnostics_dir, diagnostics_dir / "tensorboard")
    quiet = Progress("gpu check", 0, enabled=False)
    observer = diagnostics.observer if diagnostics else None
    if diagnostics:
        diagnostics.start_epoch(1, global_step=0)
    train_one_epoch(model, batches[:3], optimizer, scaler, precision, normalize, RunningTotals(), 0, lambda: False,
                    quiet, observer=observer)  # warm-up: cuDNN autotuning, allocator
    synchronize(device)
    started = time.perf_counter()
    train_one_epoch(model, batches, optimizer, scaler, precision, normalize, RunningTotals(), 0, lambda: False,
                    quiet, observer=observer)
    synchronize(device)
    seconds = time.perf_counter() - started
    results = diagnostics.finish(diagnostics_dir) if diagnostics else []
    return sum(len(labels) for _, labels in batches) / seconds, (diagnostics.record if diagnostics else None), results


def baseline_images_per_second(device: torch.device, batches, freeze: bool, classes: int) -> float:
    """The original project's step: fp32, NCHW, the whole model in train mode, no autocast."""
    torch.manual_seed(0)
    model = build_classifier("resnet50", classes, 256, None, freeze).to(device)
    model.backbone_frozen = False  # the original scripts ran a frozen backbone in train mode, with autograd
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    criterion = nn.CrossEntropyLoss()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def run(part):
        model.train()
        for images, labels in part:
            images = (images.to(device).float() / 255 - mean) / std
            loss = criterion(model(images), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    run(batches[:3])
    synchronize(device)
    started = time.perf_counter()
    run(batches)
    synchronize(device)
    return sum(len(labels) for _, labels in batches) / (time.perf_counter() - started)


def _ddp_worker(rank: int, world_size: int, port: int, use_cuda: bool, results) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("nccl" if use_cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            world_size=world_size, rank=rank)
    try:
        device = torch.device("cuda", rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        total = torch.tensor([float(rank + 1)], device=device)
        dist.all_reduce(total)
        torch.manual_seed(0)
        model = DistributedDataParallel(nn.Linear(64, 8).to(device), device_ids=[rank] if use_cuda else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(3):
            inputs = torch.randn(16, 64, generator=torch.Generator().manual_seed(rank * 10 + step)).to(device)
            optimizer.zero_grad()
            model(inputs).square().mean().backward()
            optimizer.step()
        weights = model.module.weight.detach().clone()
        gathered = [torch.zeros_like(weights) for _ in range(world_size)]
        dist.all_gather(gathered, weights)
        answer = (rank, total.item(), all(torch.equal(gathered[0], other) for other in gathered))
        # DDP's reducer goes while its process group lives: freed after destroy_process_group (at this
        # function's return) it hung about 1 run in 20 on the CPU, holding the GIL, so the answer never left
        del model, optimizer
    finally:
        dist.destroy_process_group()
    results.put(answer)
    results.close()
    results.join_thread()  # the answer is in the pipe before this process exits


def ddp_check(world_size: int, use_cuda: bool) -> str:
    """NCCL over `world_size` GPUs (gloo processes on the CPU): the all_reduce's sum, equal replicas after DDP steps."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    workers = mp.start_processes(_ddp_worker, args=(world_size, port, use_cuda, results), nprocs=world_size,
                                 start_method="spawn", join=False)
    try:
        answers = sorted(results.get(timeout=120) for _ in range(world_size))
        deadline = time.monotonic() + 60
        while not workers.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise AssertionError("the DDP processes answered but did not exit within 60 s")
    finally:  # a process stuck in a collective must not outlive the check
        for process in workers.processes:
            if process.is_alive():
                process.kill()
    expected = world_size * (world_size + 1) / 2
    if any(total != expected for _, total, _ in answers) or not all(same for _, _, same in answers):
        raise AssertionError(f"all_reduce sums {[a[1] for a in answers]} (expected {expected}), replicas equal: "
                             f"{[a[2] for a in answers]}")
    return f"{world_size} {'GPU' if use_cuda else 'CPU process'}(es): all_reduce sum {expected:g}, replicas equal"


class Checks:
    def __init__(self, skipped: bool = False):
        self.rows: list[tuple[str, str, str]] = []
        self.skip_gpu_only = skipped

    def run(self, name: str, check, show=str, gpu_only: bool = False):
        """Run one check; its row shows `show(result)`, or the error. Every check runs: one failure hides none."""
        if gpu_only and self.skip_gpu_only:
            self.rows.append((name, "-", "skipped (CPU dry run)"))
            return None
        try:
            result = check()
            self.rows.append((name, show(result), OK))
            return result
        except Exception as error:  # noqa: BLE001 - reported in the table, the exit code says it failed
            traceback.print_exc()
            self.rows.append((name, f"{type(error).__name__}: {error}"[:160], FAILED))
            return None

    def print(self) -> None:
        width = max(len(name) for name, _, _ in self.rows)
        measured_width = min(100, max(len(measured) for _, measured, _ in self.rows))
        print(f"\n{'check':{width}}  {'measured':{measured_width}}  result")
        for name, measured, result in self.rows:
            print(f"{name:{width}}  {measured:{measured_width}}  {result}")

    @property
    def failed(self) -> bool:
        return any(result == FAILED for _, _, result in self.rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per run")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="the same checks on the CPU, tiny sizes, GPU-only checks skipped (tests)")
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run
    if torch.cuda.device_count() == 0 and not dry:
        print(f"no GPU: CUDA sees none here ({cuda_stack()}; {host_driver()}); nothing to check on this machine")
        return 0
    device = torch.device("cpu" if dry else "cuda")
    size, classes, count = (64, 4, 2) if dry else (224, 133, torch.cuda.device_count())
    checks = Checks(skipped=dry)
    checks.run("device", lambda: ", ".join(torch.cuda.get_device_name(i) for i in range(count)), gpu_only=True)
    checks.run("driver", host_driver, gpu_only=True)
    checks.run("CUDA (torch)", lambda: f"{torch.version.cuda} (torch {torch.__version__})")
    checks.run("cuDNN", lambda: str(torch.backends.cudnn.version()), gpu_only=True)
    checks.run("NCCL", lambda: ".".join(map(str, torch.cuda.nccl.version())), gpu_only=True)
    checks.run("matmul on the GPU = CPU", _matmul_agrees, gpu_only=True)
    checks.run("AMP dtype", lambda: str(Precision.for_device(device).autocast_dtype))
    batches = synthetic_batches(args.steps, args.batch_size, size, classes, pin=not dry)
    speed = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        frozen = checks.run("frozen ResNet-50 + head, AMP + channels_last (img/s)",
                            lambda: ours_images_per_second(device, batches, True, classes, Path(folder)),
                            show=lambda result: f"{result[0]:.1f}")
        if frozen:
            speed["frozen"], record, results = frozen
            checks.run("step timer: CUDA-event phases", lambda: _phases_recorded(record))
            checks.run("NVML sampler: GPU samples", lambda: _gpu_samples(record), gpu_only=True)
            checks.run("LowGPUUtilization judged", lambda: _judged(results), gpu_only=True)
    speed["trainable"] = checks.run("trainable ResNet-50 + head, AMP + channels_last (img/s)",
                                    lambda: ours_images_per_second(device, batches, False, classes)[0], show=_rate)
    for name, freeze in (("frozen", True), ("trainable", False)):
        baseline = checks.run(f"{name}: original fp32 loop (img/s)",
                              lambda freeze=freeze: baseline_images_per_second(device, batches, freeze, classes),
                              show=_rate)
        if baseline and speed.get(name):
            checks.rows.append((f"{name}: ours / original", f"{speed[name] / baseline:.2f}x", OK))
    checks.run("DDP over NCCL", lambda: ddp_check(count, use_cuda=not dry))
    checks.print()
    print("baseline: the original project's training step (fp32, NCHW, train mode, no autocast) on the same "
          f"in-memory batches; batch {args.batch_size}, {args.steps} timed steps after 3 warm-up, {size} px, "
          f"{classes} classes" + ("; CPU DRY RUN: no GPU was checked" if dry else ""))
    return 1 if checks.failed else 0


def _rate(images_per_second: float) -> str:
    return f"{images_per_second:.1f}"


def _matmul_agrees() -> str:
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    difference = (torch.mm(a.cuda(), b.cuda()).cpu() - torch.mm(a, b)).abs().max().item()
    if difference > 1e-2:  # TF32 may round; a broken device is far off
        raise AssertionError(f"max abs difference {difference}")
    return f"max abs difference {difference:.1e}"


def _phases_recorded(record) -> str:
    steps = record.steps
    if not steps or not all(step.seconds.get("forward", 0) > 0 and step.seconds.get("backward", 0) > 0
                            for step in steps):
        raise AssertionError(f"{len(steps)} step records, phases {steps[:1]}")
    mean = {phase: sum(step.seconds.get(phase, 0.0) for step in steps) / len(steps) * 1000 for phase in PHASES}
    return f"{len(steps)} steps; ms per step " + ", ".join(f"{k} {v:.1f}" for k, v in mean.items())


def _gpu_samples(record) -> str:
    samples = [sample.gpu_percent for sample in record.system if sample.gpu_percent]
    if not samples:
        raise AssertionError(f"{len(record.system)} system samples, none with GPU utilisation")
    return f"{len(samples)} samples, mean utilisation {sum(map(max, samples)) / len(samples):.0f}%"


def _judged(results) -> str:
    [result] = [r for r in results if r.rule == "LowGPUUtilization"]
    if result.status == "NotApplicable":
        raise AssertionError(result.message)
    return f"{result.status}: {result.message}"


if __name__ == "__main__":
    sys.exit(main())
