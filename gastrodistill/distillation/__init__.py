"""Stage 2: learn a few synthetic images, their soft labels and a learning-rate schedule by bi-level
optimisation through an unrolled inner training loop (``higher`` or ``torch.func`` backends)."""

from gastrodistill.distillation.distilled_set import DistilledSet, DistilledSetError
from gastrodistill.distillation.inner_loop import meta_objective, outer_loss, replay, sgd_step

__all__ = ["DistilledSet", "DistilledSetError", "meta_objective", "outer_loss", "replay", "sgd_step"]
