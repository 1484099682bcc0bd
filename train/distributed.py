"""Process layout: one process per GPU on each host (DDP), or one process on a CPU.

SageMaker starts the same program once per host; this module derives ranks and the rendezvous
from SM_HOSTS / SM_CURRENT_HOST (train.launcher starts the host's processes), so no external
launcher (torchrun, mpirun) is needed in the image.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import torch
import torch.distributed as dist

from train.errors import TrainingError

DEFAULT_MASTER_PORT = 29500


@dataclasses.dataclass(frozen=True)
class ProcessLayout:
    processes_per_host: int
    num_hosts: int
    host_rank: int
    master_addr: str
    master_port: int
    use_cuda: bool

    @property
    def world_size(self) -> int:
        return self.processes_per_host * self.num_hosts

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def global_rank(self, local_rank: int) -> int:
        return self.host_rank * self.processes_per_host + local_rank


def plan_layout(requested: int | None, gpus: int, hosts: tuple[str, ...], host_rank: int) -> ProcessLayout:
    """`gpus`: the usable GPUs of this host (train.gpu.usable_gpus), 0 for the CPU."""
    if requested and gpus and requested > gpus:
        raise TrainingError(f"--processes-per-host {requested} but this host has {gpus} usable GPU(s): "
                            "one process per GPU at most")
    per_host = requested or max(1, gpus)
    single_host = len(hosts) == 1
    return ProcessLayout(
        processes_per_host=per_host,
        num_hosts=len(hosts),
        host_rank=host_rank,
        # Several hosts meet at the first one (SageMaker's hosts resolve to each other);
        # one host keeps everything on loopback, on a free port so parallel jobs never clash.
        master_addr=os.environ.get("MASTER_ADDR") or ("127.0.0.1" if single_host else hosts[0]),
        master_port=int(os.environ.get("MASTER_PORT") or (_free_port() if single_host else DEFAULT_MASTER_PORT)),
        use_cuda=gpus > 0,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_process(layout: ProcessLayout, local_rank: int) -> torch.device:
    device = torch.device("cuda", local_rank) if layout.use_cuda else torch.device("cpu")
    if layout.use_cuda:
        torch.cuda.set_device(device)
    if layout.distributed:
        dist.init_process_group(
            backend="nccl" if layout.use_cuda else "gloo",
            init_method=f"tcp://{layout.master_addr}:{layout.master_port}",
            world_size=layout.world_size,
            rank=layout.global_rank(local_rank),
        )
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def rank_and_world() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wait_for_all() -> None:
    """Every process waits here until all have arrived. At the end of a job: the others wait while rank 0
    writes the model, the int8 check and the report, so no host ends first (in SDK local mode Compose stops
    every container as soon as one exits, which cut rank 0 short in its int8 check)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_strided(local: torch.Tensor, total: int) -> torch.Tensor:
    """Every rank's rows, gathered in order: rank r holds rows r, r + world, r + 2 world, ... of `total`
    (what a non-shuffling EpochSampler gives it). all_gather needs equal shapes, so shards are padded."""
    world = dist.get_world_size()
    per_rank = -(-total // world)
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[:len(local)] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    whole = torch.empty((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    for rank, rows in enumerate(gathered):
        whole[rank::world] = rows[:len(range(rank, total, world))]
    return whole


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any: all ranks stop at the same step."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# What gloo and NCCL raise in a collective whose peer process died or whose host went away.
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
              "remote process exited or there was a network error")


def peer_lost(error: BaseException) -> bool:
    return any(marker in str(error) for marker in _PEER_LOST)
