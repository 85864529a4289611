"""Training tasks behind one interface (tasks/base.py), chosen by the config's dataset mode."""
from __future__ import annotations

from ..config import TrainConfig
from .base import Task
from .everything import EverythingTask
from .prompt import PromptTask

# dataset.mode -> task
TASKS = {"prompt": PromptTask, "everything": EverythingTask}


def make_task(cfg: TrainConfig) -> Task:
    """The task a run trains, by its config's dataset.mode."""
    return TASKS[cfg.dataset.mode](cfg)


__all__ = ["TASKS", "Task", "make_task"]
