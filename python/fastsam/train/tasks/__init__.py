"""Training tasks behind one interface (tasks/base.py), chosen by the config's dataset mode."""
from __future__ import annotations

from ..config import TrainConfig
from .base import Task
from .prompt import PromptTask

TASKS = {"prompt": PromptTask}


def make_task(cfg: TrainConfig) -> Task:
    """The task a run trains."""
    return TASKS["prompt"](cfg)


__all__ = ["TASKS", "Task", "make_task"]
