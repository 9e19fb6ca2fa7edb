"""The distiller's options in float64: chunked outer loss, inner momentum and its replay, RaT-BPTT windows,
DSA inside the unroll; both backends agree on each."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _distill_helpers import tiny_problem

from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.inner_loop import (
    meta_objective,
    outer_loss,
    release_template,
    replay,
    sample_window_end,
    sgd_step,
    unroll_func,
)
from gastrodistill.models import ConvNet
from gastrodistill.utils.seeding import torch_generator

NAMES = ("images", "label_logits", "raw_lrs")
BACKENDS = [("func", False), ("func", True), ("higher", False)]


def grads_of(ds, net, x, y, backend="func", checkpoint=False, **options):
    """(loss, acc, {name: meta-gradient}) of one meta_objective + backward of its surrogate."""
    ds.zero_grad(set_to_none=True)
    res = meta_objective(net, ds, x, y, backend, checkpoint, **options)
    res.surrogate.backward()
    release_template(net)
    return res.loss, res.acc, {n: getattr(ds, n).grad.clone() for n in NAMES}


def assert_finite_differences(ds, net, x, y, name, grad, n, generator, eps=1e-6):
    """``grad`` (the meta-gradient of ``ds.<name>``) against central float64 finite differences of the
    meta-objective's loss at ``n`` entries drawn with ``generator``."""
    flat = getattr(ds, name).data.view(-1)
    for i in torch.randperm(flat.numel(), generator=generator)[:n].tolist():
        old = flat[i].item()
        flat[i] = old + eps
        plus = meta_objective(net, ds, x, y).loss.item()
        flat[i] = old - eps
        minus = meta_objective(net, ds, x, y).loss.item()
        flat[i] = old
        assert grad.view(-1)[i].item() == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-9)


def assert_same(a, b, rtol=1e-9, atol=1e-13):
    for n in NAMES:
        assert torch.allclose(a[n], b[n], rtol=rtol, atol=atol), (n, (a[n] - b[n]).abs().max())


# ---- chunked outer loss -------------------------------------------------------------------------------
@pytest.mark.parametrize(("backend", "checkpoint"), BACKENDS)
@pytest.mark.parametrize("chunk", [1, 3, 8, 100])
def test_chunked_outer_loss_gives_the_unchunked_meta_gradients(backend, checkpoint, chunk):
    ds, net, x, y = tiny_problem(11, n_real=8)
    loss0, acc0, g0 = grads_of(ds, net, x, y, backend, checkpoint)
    loss1, acc1, g1 = grads_of(ds, net, x, y, backend, checkpoint, outer_chunk=chunk)
    assert loss1.item() == pytest.approx(loss0.item(), rel=1e-12)
    assert acc1.item() == pytest.approx(acc0.item(), abs=1e-12)
    assert_same(g0, g1)
    assert all(g0[n].abs().sum() > 0 for n in NAMES)


def test_chunked_accuracy_is_the_final_networks_accuracy():
    ds, net, x, y = tiny_problem(2, n_real=16)
    res = meta_objective(net, ds, x, y, outer_chunk=5)
    weights = unroll_func(net, ds)
    logits = torch.func.functional_call(net, weights, (x,))
    assert res.acc.item() == pytest.approx((logits.argmax(1) == y).double().mean().item())
    assert res.loss.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-12)


def test_bad_chunk_is_named():
    ds, net, x, y = tiny_problem()
    with pytest.raises(ValueError, match="distill.outer_chunk"):
        meta_objective(net, ds, x, y, outer_chunk=0)


# ---- inner momentum -----------------------------------------------------------------------------------
def replayed_net(net, ds):
    fresh = copy.deepcopy(net)
    return replay(fresh, ds)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
@pytest.mark.parametrize(("backend", "checkpoint"), BACKENDS)
def test_momentum_unroll_equals_its_replay(momentum, backend, checkpoint):
    """The unroll's final network (its logits on real data) == the graph-free replay with stored momentum."""
    ds, net, x, y = tiny_problem(4, steps=3, epochs=2, momentum=momentum)
    res = meta_objective(net, ds, x, y, backend, checkpoint)
    release_template(net)
    with torch.no_grad():
        expected = replayed_net(net, ds)(x)
    assert torch.allclose(res.logits.detach(), expected, rtol=1e-10, atol=1e-12)
    if backend == "func":
        weights = unroll_func(net, ds, checkpoint, momentum=momentum)
        fresh = replayed_net(net, ds)
        for name, p in fresh.named_parameters():
            assert torch.allclose(weights[name].detach(), p, rtol=1e-10, atol=1e-12), name


def hand_heavy_ball(net, ds, momentum, steps=None):
    """A copy of ``net`` after the first ``steps`` (all by default) inner steps of heavy-ball SGD
    (v <- m v + g, w <- w - lr v) on ``ds``'s stored schedule, written out by hand (not ``sgd_step``)."""
    hand = copy.deepcopy(net)
    vel = {n: torch.zeros_like(p) for n, p in hand.named_parameters()}
    for t, lr in enumerate(ds.lrs().detach().tolist()[:steps]):
        xb, pb = ds.batch(t)
        hand.zero_grad()
        F.cross_entropy(hand(xb.detach()), pb.detach()).backward()
        with torch.no_grad():
            for n, p in hand.named_parameters():
                vel[n] = momentum * vel[n] + p.grad
                p -= lr * vel[n]
    return hand


def test_momentum_changes_the_trajectory_and_replay_uses_the_stored_value():
    ds0, net, x, _ = tiny_problem(4, steps=3, epochs=2, momentum=0.0)
    ds9, *_ = tiny_problem(4, steps=3, epochs=2, momentum=0.9)
    with torch.no_grad():
        assert not torch.allclose(replayed_net(net, ds0)(x), replayed_net(net, ds9)(x))
    hand = hand_heavy_ball(net, ds9, 0.9)
    with torch.no_grad():
        assert torch.allclose(replayed_net(net, ds9)(x), hand(x), rtol=1e-10)


def test_momentum_meta_gradient_matches_finite_differences_and_backends_agree():
    ds, net, x, y = tiny_problem(6, momentum=0.7)
    _, _, g_func = grads_of(ds, net, x, y, "func")
    _, _, g_higher = grads_of(ds, net, x, y, "higher")
    _, _, g_ckpt = grads_of(ds, net, x, y, "func", True)
    assert_same(g_func, g_higher)
    assert_same(g_func, g_ckpt)
    for name in NAMES:
        assert_finite_differences(ds, net, x, y, name, g_func[name], 3, torch_generator(0, "fd", name))


def test_momentum_is_saved_with_the_set(tmp_path):
    ds = DistilledSet(3, 1, 2, 2, (1, 4, 4), inner_momentum=0.5)
    ds.save(tmp_path)
    assert json.loads((tmp_path / "distilled.json").read_text())["inner_momentum"] == 0.5
    assert DistilledSet.load(tmp_path).inner_momentum == 0.5
    meta = json.loads((tmp_path / "distilled.json").read_text())
    del meta["inner_momentum"]  # a set written before the key existed replays with plain SGD
    (tmp_path / "distilled.json").write_text(json.dumps(meta))
    assert DistilledSet.load(tmp_path).inner_momentum == 0.0
    with pytest.raises(ValueError, match="inner_momentum"):
        DistilledSet(3, 1, 2, 2, (1, 4, 4), inner_momentum=1.0)


def test_sgd_step_momentum_needs_a_velocity_dict():
    lin = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="velocity"):
        sgd_step(lin, torch.ones(1, 2), torch.tensor([0]), 0.1, momentum=0.9)


def test_replay_stops_on_a_non_finite_loss():
    ds, net, _, _ = tiny_problem(1)
    with torch.no_grad():
        ds.images[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="replay step 0"):
        replay(net, ds)


# ---- RaT-BPTT windows -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("backend", "checkpoint"), BACKENDS)
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_a_window_of_the_whole_unroll_gives_the_plain_meta_gradients(backend, checkpoint, momentum):
    ds, net, x, y = tiny_problem(8, steps=2, epochs=2, momentum=momentum)
    T = ds.num_inner_steps
    _, _, plain = grads_of(ds, net, x, y, backend, checkpoint)
    _, _, whole = grads_of(ds, net, x, y, backend, checkpoint, window=T, window_end=T)
    assert_same(plain, whole)


@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_backends_agree_inside_a_window_and_the_prefix_carries_no_graph(momentum):
    ds, net, x, y = tiny_problem(9, steps=2, epochs=3, momentum=momentum)  # T = 6
    opts = {"window": 2, "window_end": 5, "outer_chunk": 3}  # differentiable steps 3 and 4
    loss_f, _, g_func = grads_of(ds, net, x, y, "func", **opts)
    loss_c, _, g_ckpt = grads_of(ds, net, x, y, "func", True, **opts)
    loss_h, _, g_higher = grads_of(ds, net, x, y, "higher", **opts)
    assert loss_f.item() == pytest.approx(loss_h.item(), rel=1e-12) == loss_c.item()
    assert_same(g_func, g_higher)
    assert_same(g_func, g_ckpt)
    lr_grad = g_func["raw_lrs"]
    assert torch.all(lr_grad[[0, 1, 2, 5]] == 0) and torch.all(lr_grad[[3, 4]] != 0)
    # The loss is that of the network after 5 replayed steps.
    fresh = replay(copy.deepcopy(net), ds, steps=5)
    with torch.no_grad():
        assert loss_f.item() == pytest.approx(F.cross_entropy(fresh(x), y).item(), rel=1e-10)


def test_window_meta_gradient_is_the_truncated_gradient():
    """Independently: the window's gradient = the gradient of step 2 alone, from the replayed prefix."""
    ds, net, x, y = tiny_problem(10, steps=2, epochs=2, momentum=0.5)  # T = 4
    _, _, g_win = grads_of(ds, net, x, y, window=1, window_end=3)  # differentiable step 2 only
    start_net = replay(copy.deepcopy(net), ds, steps=2)
    # Step 2 of the schedule as a one-step set (batch 0, lr 2) with the prefix's velocity: by hand.
    velocity = {}
    replay_net = copy.deepcopy(net)
    for t in range(2):
        xb, pb = ds.batch(t)
        sgd_step(replay_net, xb.detach(), pb.detach(), float(ds.lrs()[t].detach()), 0.5, velocity)
    names = [n for n, _ in start_net.named_parameters()]
    w = [p.detach() for p in start_net.parameters()]
    xb, pb = ds.batch(2)
    lr = ds.lrs()[2]
    wl = [t.requires_grad_(True) for t in (p.clone() for p in w)]
    loss_in = F.cross_entropy(torch.func.functional_call(net, dict(zip(names, wl, strict=True)), (xb,)), pb)
    gs = torch.autograd.grad(loss_in, wl, create_graph=True)
    new = [wi - lr * (0.5 * velocity[n] + g) for wi, n, g in zip(wl, names, gs, strict=True)]
    outer = F.cross_entropy(torch.func.functional_call(net, dict(zip(names, new, strict=True)), (x,)), y)
    ds.zero_grad(set_to_none=True)
    outer.backward()
    for n in NAMES:
        assert torch.allclose(getattr(ds, n).grad, g_win[n], rtol=1e-9, atol=1e-13), n


@pytest.mark.parametrize("backend", ["func", "higher"])
def test_every_window_end_takes_the_loss_after_that_many_replayed_steps(backend):
    """For each end in [W, T] (a graph-free prefix of 0, 1, 2 and 3 steps): the loss is that of the network
    after ``end`` hand-run heavy-ball steps on the stored schedule, and only the window's rates get a
    gradient."""
    ds, net, x, y = tiny_problem(15, steps=2, epochs=2, momentum=0.5)  # T = 4
    for end in range(1, 5):
        loss, _, g = grads_of(ds, net, x, y, backend, window=1, window_end=end)
        hand = hand_heavy_ball(net, ds, 0.5, steps=end)
        with torch.no_grad():
            assert loss.item() == pytest.approx(F.cross_entropy(hand(x), y).item(), rel=1e-10), end
        assert torch.nonzero(g["raw_lrs"]).flatten().tolist() == [end - 1], end


@pytest.mark.parametrize("augment_real", [True, False])
def test_an_augmented_window_is_the_hand_run_augmented_schedule(augment_real):
    """With DSA and a window that starts after two graph-free steps: every inner step t (prefix and window)
    draws its batch with the generator of ``(*seed_parts, "inner", t)``, and the real batch is drawn with
    that of ``(*seed_parts, "real")`` only when ``augment_real``; a hand-run replay of those draws."""
    ds, net, x, y = tiny_problem(16, steps=2, epochs=2, momentum=0.5)  # T = 4
    dsa = DSA(flip=True, shift_px=1, brightness=0.3)
    parts = (5, "dsa", 2, 0, 1)
    res = meta_objective(
        net, ds, x, y, window=1, window_end=3, augment=dsa, augment_real=augment_real, seed_parts=parts
    )
    hand, vel = copy.deepcopy(net), {}
    for t in range(3):
        xb, pb = ds.batch(t)
        xb = dsa(xb.detach(), torch_generator(*parts, "inner", t))
        sgd_step(hand, xb, pb.detach(), float(ds.lrs()[t].detach()), 0.5, vel)
    x_seen = dsa(x, torch_generator(*parts, "real")) if augment_real else x
    with torch.no_grad():
        assert res.loss.item() == pytest.approx(F.cross_entropy(hand(x_seen), y).item(), rel=1e-10)
        other = dsa(x, torch_generator(*parts, "real")) if not augment_real else x
        assert res.loss.item() != pytest.approx(F.cross_entropy(hand(other), y).item(), rel=1e-6)


def test_outer_loss_refuses_a_chunked_loss():
    """``outer_loss`` returns full logits, which a chunked loss does not keep: it names meta_objective."""
    ds, net, x, y = tiny_problem()
    with pytest.raises(ValueError, match="use meta_objective for a chunked outer loss"):
        outer_loss(net, ds, x, y, outer_chunk=4)


def test_window_end_is_uniform_on_w_to_t_and_seeded():
    from scipy.stats import chisquare

    draws = [sample_window_end(10, 4, torch_generator(0, "w", i)) for i in range(400)]
    assert set(draws) == set(range(4, 11))
    many = [sample_window_end(10, 4, torch_generator(1, "w", i)) for i in range(3500)]
    assert chisquare(np.bincount(many, minlength=11)[4:]).pvalue > 1e-4  # 7 equally likely ends
    assert draws == [sample_window_end(10, 4, torch_generator(0, "w", i)) for i in range(400)]
    assert sample_window_end(10, None, torch_generator(0)) == 10
    assert sample_window_end(10, 10, torch_generator(0)) == 10
    with pytest.raises(ValueError, match="distill.window"):
        sample_window_end(10, 11, torch_generator(0))
    with pytest.raises(ValueError, match="distill.window"):
        sample_window_end(10, 0, torch_generator(0))


# ---- DSA inside the unroll ------------------------------------------------------------------------------
def test_backends_agree_with_augmentation_and_every_option():
    ds, net, x, y = tiny_problem(12, steps=2, epochs=3, momentum=0.3)
    dsa = DSA(flip=True, rotate=15, scale=0.1, translate=0.1, brightness=0.1, contrast=0.1)
    opts = {"augment": dsa, "seed_parts": (0, "dsa", 3, 0, 0), "window": 3, "window_end": 5, "outer_chunk": 5}
    loss_f, _, g_func = grads_of(ds, net, x, y, "func", **opts)
    loss_h, _, g_higher = grads_of(ds, net, x, y, "higher", **opts)
    loss_c, _, g_ckpt = grads_of(ds, net, x, y, "func", True, **opts)
    assert loss_f.item() == pytest.approx(loss_h.item(), rel=1e-12)
    assert_same(g_func, g_higher)
    assert_same(g_func, g_ckpt)
    # The augmentation matters, and the same seeds repeat it exactly.
    loss_plain, _, _ = grads_of(ds, net, x, y, "func", window=3, window_end=5)
    assert loss_plain.item() != pytest.approx(loss_f.item(), rel=1e-6)
    again, _, g_again = grads_of(ds, net, x, y, "func", **opts)
    assert again.item() == loss_f.item()
    assert_same(g_func, g_again, rtol=0, atol=0)
    other = dict(opts, seed_parts=(0, "dsa", 4, 0, 0))
    assert grads_of(ds, net, x, y, "func", **other)[0].item() != loss_f.item()


# ---- a network behind a local ZCA filter (data.zca) ------------------------------------------------------
def test_backends_agree_behind_a_zca_filter_and_match_finite_differences():
    ds, plain, x, y = tiny_problem(13, momentum=0.5)
    kernel = torch.randn(1, 3, 3, generator=torch_generator(13, "zca"))
    net = ConvNet(1, 3, (4, 4), width=3, depth=1, act="tanh", zca_kernel=kernel.tolist()).double()
    net.load_state_dict({**plain.state_dict(), "zca.kernel": net.zca.kernel})  # the same weights
    _, _, g_func = grads_of(ds, net, x, y, "func")
    _, _, g_higher = grads_of(ds, net, x, y, "higher")
    _, _, g_ckpt = grads_of(ds, net, x, y, "func", True)
    assert_same(g_func, g_higher)
    assert_same(g_func, g_ckpt)
    _, _, g_plain = grads_of(ds, plain, x, y, "func")  # the filter changes what the images are asked for
    assert not torch.allclose(g_func["images"], g_plain["images"], rtol=1e-3)
    assert_finite_differences(ds, net, x, y, "images", g_func["images"], 4, torch_generator(13, "fd"))
    assert torch.equal(net.zca.kernel[:, 0], kernel.double())  # the unroll never changes the filter
