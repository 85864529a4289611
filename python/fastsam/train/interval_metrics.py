"""Train loss terms smoothed over a step interval (metrics_interval): summed per step, averaged when the
interval closes, and averaged over DDP ranks like the per-epoch figures."""
from __future__ import annotations

import torch

from .distributed import DistInfo, gather_objects, reduce_sum


class IntervalMetrics:
    """Every `interval` optimizer steps (and at the last step of the budget) a record of the mean train loss
    terms over the steps since the previous one."""

    def __init__(self, interval: int, terms: tuple[str, ...], total_steps: int, info: DistInfo):
        if interval < 1:
            raise ValueError(f"metrics interval must be >= 1, got {interval}")
        self.interval, self.total_steps, self.info = interval, total_steps, info
        self.names = ("loss",) + tuple(terms)
        self.sums, self.count = dict.fromkeys(self.names, 0.0), 0

    def add(self, loss: float, stats: dict) -> None:
        self.sums["loss"] += loss
        for name in self.names[1:]:
            self.sums[name] += stats[name]
        self.count += 1

    def due(self, step: int) -> bool:
        return step % self.interval == 0 or step == self.total_steps

    def flush(self) -> dict:
        """{"train_<term>": mean since the last flush} over every rank (a collective: every rank calls it)."""
        packed = torch.tensor([self.sums[n] for n in self.names], dtype=torch.float64)
        packed = reduce_sum(packed, self.info) / self.info.world_size
        means = {f"train_{n}": v / max(1, self.count) for n, v in zip(self.names, packed.tolist())}
        means["train_steps"] = self.count
        self.sums, self.count = dict.fromkeys(self.names, 0.0), 0
        return means

    def state(self) -> dict:
        """This rank's open interval (a mid-interval checkpoint carries it; resume continues the mean)."""
        return {"sums": dict(self.sums), "count": self.count}

    @staticmethod
    def gather(intervals: IntervalMetrics | None) -> list[dict] | None:
        """Every rank's open interval (a collective), for a checkpoint between records; None without intervals."""
        return None if intervals is None else gather_objects(intervals.state(), intervals.info)

    def load_state(self, state: dict) -> None:
        self.sums, self.count = dict(state["sums"]), int(state["count"])
