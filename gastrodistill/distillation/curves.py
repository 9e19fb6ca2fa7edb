"""The outer loop's curves: each outer step's loss and accuracy on its real batch, kept for ``curves.png``.

Lightning's loggers write the same numbers (CSV, W&B), but a CSV is read, not looked at, and W&B runs
offline by default; :class:`OuterCurves` keeps them for the figure the distill stage draws beside the set
(:func:`~gastrodistill.distillation.plots.curves_image`). It is a Lightning callback with state, so a
checkpoint carries the curve so far and a resumed run draws it from outer step 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pytorch_lightning import Callback

#: The logged metrics the curves follow (``DistillModule.training_step``).
LOSS, ACCURACY = "outer/loss", "outer/acc"


class OuterCurves(Callback):
    """Each finished outer step's number (``trainer.global_step``, from 1), loss and accuracy on the real
    batch (``LOSS``, ``ACCURACY`` of ``trainer.callback_metrics``, averaged over ranks as logged).

    The values are kept as detached tensors until read (:meth:`curves`, :meth:`state_dict`), so the outer
    loop does not wait on the device for them at every step.
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self._loss: list[Any] = []
        self._acc: list[Any] = []

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Lightning hook: record the step just finished (a step without a logged loss is skipped)."""
        metrics = trainer.callback_metrics
        if LOSS not in metrics:
            return
        self.steps.append(int(trainer.global_step))
        self._loss.append(_kept(metrics[LOSS]))
        self._acc.append(_kept(metrics.get(ACCURACY, math.nan)))

    def curves(self) -> dict[str, list[float]]:
        """``{"step": [...], "loss": [...], "accuracy": [...]}``, in the order of the steps."""
        return {
            "step": [float(s) for s in self.steps],
            "loss": [float(v) for v in self._loss],
            "accuracy": [float(v) for v in self._acc],
        }

    def state_dict(self) -> dict[str, Any]:
        """The curve so far, as plain numbers (saved in each checkpoint)."""
        return self.curves()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the curve of the checkpoint's run (a checkpoint from before these curves has none)."""
        self.steps = [int(s) for s in state_dict.get("step", [])]
        self._loss = [float(v) for v in state_dict.get("loss", [])]
        self._acc = [float(v) for v in state_dict.get("accuracy", [])]


def _kept(value: Any) -> Any:
    """A logged value kept without a device sync: a detached copy of a tensor, else the number."""
    return value.detach().clone() if isinstance(value, torch.Tensor) else float(value)
