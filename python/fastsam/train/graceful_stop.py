"""Stop a training run at the next step boundary on Ctrl-C / SIGTERM, so it can checkpoint first.

A signal only sets a flag: the loop finishes the optimizer step it is in (never leaving weights half
updated), writes latest_model.pth and raises TrainingStopped. A second signal interrupts at once.
Under torchrun every rank installs the handlers and the loop ORs the flag over ranks after each step
(distributed.any_rank), so a signal that reaches one rank, or all of them at different steps, stops every
rank after the same step; the checkpoint then holds each rank's running sums.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(RuntimeError):
    """The run was stopped on request after saving `checkpoint` (resume from it)."""

    def __init__(self, checkpoint: Path | None, step: int):
        self.checkpoint = checkpoint
        self.step = step
        where = f"; resume with --resume {checkpoint}" if checkpoint else ""
        super().__init__(f"training stopped after step {step}{where}")


class GracefulStop:
    """Context manager: `requested` turns True on the first SIGINT/SIGTERM while active."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:  # second signal: give the user their interrupt back
            self._restore()
            raise KeyboardInterrupt
        self.requested = True

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> "GracefulStop":
        if self.enabled:
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_IGN:  # e.g. under nohup: keep ignoring it
                    continue
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
