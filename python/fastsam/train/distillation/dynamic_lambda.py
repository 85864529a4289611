"""Dynamic lambda: a plateau schedule of the distillation weight on the validation score.

While the student keeps improving, the teacher keeps its say; after `patience` epochs without a new best
score, lambda is multiplied by `factor` (never below `min`), so the task loss takes over as the student
catches up. Its state goes into every checkpoint, so --resume continues the same schedule.
"""
from __future__ import annotations


class PlateauLambda:
    """lambda_coef as a function of the validation history (higher score = better).

    Arguments:
      initial: the starting lambda (distillation.lambda_coef).
      factor: multiplier in (0, 1) applied on a plateau.
      patience: epochs without a new best before lambda drops.
      minimum: floor of lambda.
      enabled: False keeps lambda at `initial` whatever the scores.
    """

    def __init__(self, initial: float, factor: float = 0.5, patience: int = 2, minimum: float = 0.0,
                 enabled: bool = True):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if not 0 <= minimum <= initial:
            raise ValueError(f"minimum must be in [0, initial={initial}], got {minimum}")
        self.factor, self.patience, self.minimum, self.enabled = factor, patience, minimum, enabled
        self.value = initial
        self.best: float | None = None
        self.bad_epochs = 0

    def step(self, score: float) -> float:
        """Record one validation score (after an epoch); returns lambda for the next epoch."""
        if self.best is None or score > self.best:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
        if self.enabled and self.bad_epochs >= self.patience:
            self.value = max(self.minimum, self.value * self.factor)
            self.bad_epochs = 0
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.best, self.bad_epochs = state["value"], state["best"], state["bad_epochs"]
