"""GPU checks of the evaluation (marker ``gpu``; skipped without CUDA, run by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import pytest
import torch

from gastrodistill.evaluation.ensemble import Ensemble
from gastrodistill.models.convnet import ConvNet
from gastrodistill.utils.seeding import torch_generator

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_ensemble_scoring_autocasts_to_bfloat16_on_cuda():
    """``eval.score_autocast`` scores ensembles under CUDA autocast: the vmapped logits must be bfloat16
    (on the CPU autocast does not reach inside vmap, so a CPU run cannot show this) and agree with the
    networks one by one under the same autocast."""
    nets = [
        ConvNet(1, 3, (32, 32), width=16, depth=3, pool="max", init_seed=i).cuda().eval() for i in range(3)
    ]
    x = torch.randn(8, 1, 32, 32, generator=torch_generator(0, "x")).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        together = Ensemble(nets).forward(x)
        alone = torch.stack([n(x) for n in nets])
    assert together.dtype == torch.bfloat16 and alone.dtype == torch.bfloat16
    torch.testing.assert_close(together.float(), alone.float(), rtol=5e-2, atol=5e-2)
