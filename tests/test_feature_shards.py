"""Under DDP each rank computes the backbone features of its own shard only, and one gather puts every split
back in file order on every rank (the feature cache and the featurize job both go through split_features)."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp
from serving import free_port

from train import distributed, features
from train.data import Split, scan_split
from train.engine import Precision
from train.network import Normalize, Preprocess, build_classifier


def tiny_split(dataset) -> Split:
    folders = sorted(p.name for p in (dataset / "test").iterdir())
    return scan_split("test", dataset / "test", folders, threads=1)


def test_each_rank_computes_only_its_shard(tiny_dataset, monkeypatch):
    split = tiny_split(tiny_dataset)  # 9 images
    torch.manual_seed(0)
    backbone = build_classifier("resnet18", 2, 1, None, freeze_backbone=True).backbone
    preprocess, precision = Preprocess.for_image_size(32), Precision.for_device(torch.device("cpu"))
    compute = lambda: features.split_features(backbone, split, preprocess, precision, Normalize(), 0,  # noqa: E731
                                              show_progress=False)
    whole, labels = compute()
    monkeypatch.setattr(distributed, "gather_strided", lambda local, total: local)  # what this rank computed
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank_and_world", lambda rank=rank: (rank, 2))
        shard, shard_labels = compute()
        assert len(shard) == len(range(rank, 9, 2))  # 5 and 4 images: no image computed twice
        assert torch.allclose(shard, whole[rank::2], atol=1e-5) and torch.equal(shard_labels, labels[rank::2])


def _gather(rank: int, port: int, total: int, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    try:
        rows = torch.arange(total, dtype=torch.float32).view(-1, 1).repeat(1, 3)[rank::2]  # this rank's shard
        results.put((rank, distributed.gather_strided(rows, total).tolist()))
    finally:
        dist.destroy_process_group()


def test_the_gather_puts_every_row_back_in_file_order():
    for total in (7, 1):  # uneven shards, and a rank with none
        port = free_port()
        results = mp.get_context("spawn").Queue()
        mp.start_processes(_gather, args=(port, total, results), nprocs=2, start_method="spawn")
        expected = torch.arange(total, dtype=torch.float32).view(-1, 1).repeat(1, 3).tolist()
        assert sorted(results.get(timeout=60) for _ in range(2)) == [(0, expected), (1, expected)]


def _lose_a_peer(rank: int, port: int, results) -> None:
    import os
    import signal

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    dist.all_reduce(torch.ones(1))
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
    try:
        for _ in range(1000):
            dist.all_reduce(torch.ones(1))
        results.put((False, "no error"))
    except RuntimeError as error:
        results.put((distributed.peer_lost(error), str(error)))


def test_a_dead_peer_fails_the_survivors_collective_with_an_error_we_recognise():
    # gloo of the pinned torch, for real: the survivor's next collective raises at once (no 30-minute timeout),
    # and train.distributed.peer_lost knows its words (the trainer turns it into "lost another process").
    port = free_port()
    results = mp.get_context("spawn").Queue()
    context = mp.start_processes(_lose_a_peer, args=(port, results), nprocs=2, join=False, start_method="spawn")
    try:
        recognised, message = results.get(timeout=120)
        assert recognised, message
    finally:
        for process in context.processes:
            process.kill()
            process.join(30)
