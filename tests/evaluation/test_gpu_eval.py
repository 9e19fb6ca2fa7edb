"""GPU checks of the evaluation (marker ``gpu``; skipped without CUDA, run by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gastrodistill.evaluation.ensemble import Ensemble
from gastrodistill.models.convnet import ConvNet
from gastrodistill.utils.seeding import torch_generator

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


class _Split:
    """The one method of a split cache that ``predict_split`` reads: normalised batches on the device."""

    def __init__(self, x: torch.Tensor, batch: int = 4) -> None:
        self.x, self.batch = x, batch

    def batches(self):
        for i in range(0, len(self.x), self.batch):
            yield self.x[i : i + self.batch]


def test_ensemble_scoring_autocasts_to_bfloat16_on_cuda():
    """``eval.score_autocast`` with ensembles on CUDA (``predict_split``): the vmapped forward runs in
    bfloat16 (on the CPU autocast does not reach inside vmap, so a CPU run cannot show this): its
    probabilities differ from float32 scoring by bfloat16 rounding only, and equal the networks' own
    probabilities scored one by one under autocast."""
    from gastrodistill.evaluation.scoring import predict_split

    nets = [
        ConvNet(1, 3, (32, 32), width=16, depth=3, pool="max", init_seed=i).cuda().eval() for i in range(3)
    ]
    split = _Split(torch.randn(8, 1, 32, 32, generator=torch_generator(0, "x")).cuda())
    fp32 = predict_split(Ensemble(nets), split)
    amp = predict_split(Ensemble(nets), split, autocast=True)
    alone = predict_split(nets, split, autocast=True)
    assert np.abs(amp - fp32).max() > 0  # it did run in bfloat16
    np.testing.assert_allclose(amp, fp32, atol=3e-2)
    np.testing.assert_allclose(amp, alone, atol=1e-2)
