"""One rank of tests/test_train_ddp_devices.py's real 2-process gloo check (a module of its own so that each
spawned process imports little besides torch)."""
from __future__ import annotations

import time
from datetime import timedelta

import torch
import torch.distributed as dist

from fastsam.train import distributed as fdist

TIMEOUT_S = 2


def run_rank(rank: int, init_file: str, results) -> None:
    """The helpers' answers over a real group, then rank 1 stays alive but silent while rank 0 waits on it."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=TIMEOUT_S))
    info = fdist.DistInfo(rank=rank, world_size=2, local_rank=rank, backend="gloo")
    try:
        answer = {"sum": fdist.reduce_sum(torch.tensor([rank + 1.0]), info).item(),
                  "stop": fdist.any_rank(rank == 1, info), "gathered": fdist.gather_objects({"rank": rank}, info)}
        if rank == 0:
            try:
                fdist.any_rank(False, info)  # rank 1 never joins this one
                answer["lonely_collective"] = "returned"
            except RuntimeError:
                answer["lonely_collective"] = "raised"
        results.put((rank, answer))
        if rank == 1:
            time.sleep(TIMEOUT_S + 2)  # longer than the timeout: only the timeout can free rank 0
    finally:
        fdist.shutdown(info)
