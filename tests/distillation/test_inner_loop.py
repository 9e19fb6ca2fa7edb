"""Meta-gradients of the unrolled inner loop: float64 finite differences, backend agreement, checkpointing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _distill_helpers import tiny_problem

from gastrodistill.distillation.inner_loop import outer_loss, release_template, sgd_step
from gastrodistill.models import ConvNet
from gastrodistill.utils.seeding import torch_generator

NAMES = ("images", "label_logits", "raw_lrs")


def meta_grads(ds, net, x, y, backend, checkpoint=False):
    ds.zero_grad(set_to_none=True)
    loss, _ = outer_loss(net, ds, x, y, backend, checkpoint)
    loss.backward()
    grads = {n: getattr(ds, n).grad.clone() for n in NAMES}
    release_template(net)
    return loss.detach(), grads


@pytest.mark.parametrize("backend", ["func", "higher"])
def test_meta_gradient_matches_float64_finite_differences(backend):
    ds, net, x, y = tiny_problem()
    _, grads = meta_grads(ds, net, x, y, backend)
    eps = 1e-6
    gen = torch_generator(1, "coords")
    for name in NAMES:
        p = getattr(ds, name)
        flat = p.data.view(-1)
        for i in torch.randperm(flat.numel(), generator=gen)[:4].tolist():
            old = flat[i].item()
            flat[i] = old + eps
            plus = outer_loss(net, ds, x, y, backend)[0].item()
            flat[i] = old - eps
            minus = outer_loss(net, ds, x, y, backend)[0].item()
            flat[i] = old
            numeric = (plus - minus) / (2 * eps)
            analytic = grads[name].view(-1)[i].item()
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9), (backend, name, i)
        assert grads[name].abs().sum() > 0, name


def test_backends_and_checkpointing_give_the_same_meta_gradients():
    ds, net, x, y = tiny_problem(3)
    loss_f, g_func = meta_grads(ds, net, x, y, "func")
    loss_h, g_higher = meta_grads(ds, net, x, y, "higher")
    loss_c, g_ckpt = meta_grads(ds, net, x, y, "func", checkpoint=True)
    assert torch.allclose(loss_f, loss_h, rtol=1e-12) and torch.allclose(loss_f, loss_c, rtol=1e-12)
    for n in NAMES:
        assert torch.allclose(g_func[n], g_higher[n], rtol=1e-9, atol=1e-13), n
        assert torch.allclose(g_func[n], g_ckpt[n], rtol=1e-9, atol=1e-13), n


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_unroll_matches_explicit_sgd_on_soft_and_hard_targets(mode):
    """The unrolled weights are T explicit SGD steps: compare the outer loss with a hand-run replay. A hard
    set's targets are exact one-hot vectors of its images' classes."""
    ds, net, x, y = tiny_problem(5, mode=mode)
    loss, _ = outer_loss(net, ds, x, y, "func")
    replay = ConvNet(1, 3, (4, 4), width=3, depth=1, act="tanh").double()
    replay.load_state_dict(net.state_dict())
    for t in range(ds.num_inner_steps):
        xb, pb = ds.batch(t)
        if mode == "hard":
            assert torch.equal(pb, torch.eye(3, dtype=pb.dtype)[pb.argmax(1)])
            assert sorted(pb.argmax(1).tolist()) == [0, 1, 2]  # ipc 1: one image of each class per step
        sgd_step(replay, xb.detach(), pb.detach(), float(ds.lrs()[t].detach()))
    with torch.no_grad():
        expected = F.cross_entropy(replay(x), y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.parametrize(("backend", "checkpoint"), [("func", False), ("func", True), ("higher", False)])
def test_unroll_leaves_the_sampled_initial_weights_untouched(backend, checkpoint):
    ds, net, x, y = tiny_problem(7)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss, _ = outer_loss(net, ds, x, y, backend, checkpoint)
    loss.backward()
    release_template(net)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in net.parameters())
    assert ds.images.grad is not None


def test_sgd_step_is_plain_sgd_on_soft_targets():
    """Softmax regression: the CE gradient is x^T (softmax(xW^T + b) - p) / B, computed here by hand."""
    gen = torch_generator(0, "sgd")
    lin = torch.nn.Linear(5, 3).double()
    x = torch.randn(4, 5, generator=gen, dtype=torch.double)
    p = torch.softmax(torch.randn(4, 3, generator=gen, dtype=torch.double), 1)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    err = (torch.softmax(x @ w0.T + b0, 1) - p) / 4
    sgd_step(lin, x, p, 0.5)
    assert torch.allclose(lin.weight, w0 - 0.5 * err.T @ x)
    assert torch.allclose(lin.bias, b0 - 0.5 * err.sum(0))


def test_bad_backend_is_named():
    ds, net, x, y = tiny_problem()
    with pytest.raises(ValueError, match="backend"):
        outer_loss(net, ds, x, y, "jax")
    with pytest.raises(ValueError, match="checkpointing needs distill.backend=func"):
        outer_loss(net, ds, x, y, "higher", checkpoint=True)
