"""Two-process DDP on CPU (ddp_spawn, gloo): SsnL's multi-GPU semantics, checked through files.

Each rank records, per outer step, the synchronised meta-gradient (just before the Adam step), the
distilled tensors before and after, and the seeds/fingerprints of its inner networks. The test then
recomputes every rank's local meta-gradient in this single process and compares their mean with what
DDP applied.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file, save_file

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.run import build_distilled_set, build_module, run_distillation

NAMES = ("images", "label_logits", "raw_lrs")


class Recorder(pl.Callback):
    """Writes what each rank sees into ``out`` (module-level so that ddp_spawn can pickle it)."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def _tensors(self, pl_module) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone().contiguous() for n, p in pl_module.distilled.named_parameters()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        tag = f"r{trainer.global_rank}_s{trainer.global_step}"
        grads = {
            f"grad.{n}": p.grad.detach().cpu().clone() for n, p in pl_module.distilled.named_parameters()
        }
        before = {f"before.{n}": t for n, t in self._tensors(pl_module).items()}
        save_file({**grads, **before}, str(self.out / f"{tag}_grad.safetensors"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rec = pl_module.last_step_record
        tag = f"r{rec['rank']}_s{rec['step']}"
        save_file(self._tensors(pl_module), str(self.out / f"{tag}_after.safetensors"))
        (self.out / f"{tag}.json").write_text(json.dumps({**rec, "world": trainer.world_size}))


@pytest.mark.parametrize(
    ("backend", "checkpoint"),
    [
        ("func", False),
        pytest.param("func", True, marks=pytest.mark.slow),
        pytest.param("higher", False, marks=pytest.mark.slow),
    ],
)
def test_two_process_ddp_averages_meta_gradients(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, backend, checkpoint
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rec = tmp_path / "rec"
    rec.mkdir()
    common = [
        *tiny_overrides,
        "trainer=ddp_sim",
        "trainer.enable_progress_bar=false",
        "distill.outer_steps=2",
        "distill.inner_nets_per_step=2",
        "distill.grid_every=0",
        "distill.debug_record=true",  # the initial-weight fingerprints below
    ]
    cfg = compose_cfg([*common, f"distill.backend={backend}", f"distill.checkpoint={checkpoint}"])
    # The independent recomputation below uses torch.autograd.grad: plain func backend (same math).
    ref_cfg = compose_cfg([*common, "distill.backend=func", "distill.checkpoint=false"])
    result = run_distillation(cfg, tiny_dm, tmp_path / "out", callbacks=[Recorder(str(rec))])

    tiny_dm.setup()
    for step in range(2):
        r0, r1 = (json.loads((rec / f"r{r}_s{step}.json").read_text()) for r in (0, 1))
        assert r0["world"] == r1["world"] == 2
        # Each rank sampled its own inner networks (different seeds, different initial weights).
        assert set(r0["seeds"]).isdisjoint(r1["seeds"]) and len(set(r0["seeds"])) == 2
        assert all(a != b for a, b in zip(r0["init_fingerprints"], r1["init_fingerprints"], strict=True))
        after = [load_file(str(rec / f"r{r}_s{step}_after.safetensors")) for r in (0, 1)]
        graded = [load_file(str(rec / f"r{r}_s{step}_grad.safetensors")) for r in (0, 1)]
        for n in NAMES:
            assert torch.equal(after[0][n], after[1][n]), (step, n)  # identical distilled tensors
            assert torch.equal(graded[0][f"grad.{n}"], graded[1][f"grad.{n}"]), (step, n)

        # Independent single-process computation of each rank's local meta-gradient.
        ds = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
        with torch.no_grad():
            for n in NAMES:
                getattr(ds, n).copy_(graded[0][f"before.{n}"])
        module = build_module(ref_cfg, tiny_dm, ds, None)
        params = [getattr(ds, n) for n in NAMES]
        local = []
        for rank in (0, 1):
            x, y = module.real_batch(step, rank)
            total = [torch.zeros_like(p) for p in params]
            for i in range(cfg.distill.inner_nets_per_step):
                loss = module.inner_net_loss(x, y, step, rank, i)[0] / cfg.distill.inner_nets_per_step
                for acc, g in zip(total, torch.autograd.grad(loss, params), strict=True):
                    acc += g
            local.append(total)
        for j, n in enumerate(NAMES):
            mean = (local[0][j] + local[1][j]) / 2
            applied = graded[0][f"grad.{n}"]
            assert torch.allclose(applied, mean, rtol=1e-4, atol=1e-7), (step, n)
            assert not torch.allclose(applied, local[0][j], rtol=1e-2, atol=1e-6), (step, n)  # discriminative

    final = load_file(str(rec / "r0_s1_after.safetensors"))
    for n in NAMES:
        assert torch.equal(getattr(result, n), final[n]), n  # the main process got the trained set back
    assert torch.equal(DistilledSet.load(tmp_path / "out" / "soft").images, final["images"])
