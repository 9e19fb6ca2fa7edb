"""Every network builds and runs for several input sizes and channel counts; init is seeded and complete."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from gastrodistill.models import AlexNet, ConvNet, LeNet, ResNet18, initialize
from gastrodistill.utils.seeding import torch_generator

SMALL = {
    "convnet": lambda c, k, s: ConvNet(c, k, s, width=8, depth=3),
    "lenet": lambda c, k, s: LeNet(c, k, s),
    "alexnet": lambda c, k, s: AlexNet(c, k, s, width=4, hidden=16),
    "resnet18": lambda c, k, s: ResNet18(c, k, s, width=4),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize(
    ("channels", "classes", "size"),
    [(1, 2, (1, 1)), (1, 3, (8, 8)), (3, 10, (13, 21)), (2, 3, (32, 32)), (1, 3, (130, 130))],
)
def test_forward_shapes_and_gradients(name, channels, classes, size):
    if name == "convnet" and min(size) < 4:  # its instance norm would see a 1x1 map: refused (below)
        net = ConvNet(channels, classes, size, width=8, depth=3, norm="none")
    elif name == "resnet18" and min(size) < 2:  # width 4: one channel per group over a 1x1 map, refused
        net = ResNet18(channels, classes, size, width=4, norm="none")
    else:
        net = SMALL[name](channels, classes, size)
    x = torch.randn(2, channels, *size)
    out = net(x)
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_input_gradients_match_float64_finite_differences(name):
    """The whole network's backward pass (convolutions, norms, pooling, residual paths) against central
    differences in float64 (``torch.autograd.gradcheck``), on fixed weights and inputs."""
    with torch.random.fork_rng():  # the same weights whatever ran before (no draw near a ReLU kink by chance)
        torch.manual_seed(0)
        net = SMALL[name](2, 3, (9, 11)).double()
    x = torch.randn(2, 2, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(net, (x.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_no_running_statistics_anywhere():
    """A functional unroll must not mutate buffers: no model may carry BatchNorm running stats."""
    for name, build in SMALL.items():
        net = build(1, 3, (16, 16))
        assert list(net.buffers()) == [], name
    net = ResNet18(1, 3, 16, width=4, norm="batch")
    assert list(net.buffers()) == []
    net.eval()  # batch statistics even in eval mode: output of a sample depends on its batch
    x = torch.randn(4, 1, 16, 16)
    assert not torch.allclose(net(x)[:2], net(x[:2]))


@pytest.mark.parametrize("scheme", ["xavier", "kaiming"])
def test_initialize_is_seeded_and_covers_all_layers(scheme):
    a, b = ConvNet(1, 3, 8, width=8, depth=2), ConvNet(1, 3, 8, width=8, depth=2)
    initialize(a, scheme, torch_generator(5, "x"))
    initialize(b, scheme, torch_generator(5, "x"))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    initialize(b, scheme, torch_generator(6, "x"))
    conv_a, conv_b = a.features[0].weight, b.features[0].weight
    assert not torch.equal(conv_a, conv_b)
    # Statistics of the scheme: Xavier std sqrt(2/(fan_in+fan_out)), Kaiming std sqrt(2/fan_in).
    big = torch.nn.Linear(400, 300)
    wrapper = torch.nn.Sequential(big)
    initialize(wrapper, scheme, torch_generator(0))
    expected = (2 / 700) ** 0.5 if scheme == "xavier" else (2 / 400) ** 0.5
    assert abs(big.weight.std().item() / expected - 1) < 0.02
    assert torch.count_nonzero(big.bias) == 0


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="init scheme"):
        ConvNet(1, 3, 8, init="orthogonal")
    with pytest.raises(ValueError, match="num_classes"):
        LeNet(1, 1, 8)
    with pytest.raises(ValueError, match="norm"):
        ConvNet(1, 3, 8, norm="layer")
    with pytest.raises(ValueError, match="image_size"):
        AlexNet(1, 3, (0, 8))
    for build in SMALL.values():  # a layer of no input channels used to build (torch allows it)
        with pytest.raises(ValueError, match="in_channels must be >= 1, got 0"):
            build(0, 3, 8)


def test_a_convnet_too_deep_for_its_images_is_refused_before_it_runs():
    """Depth 4 on 8 px images leaves a 1x1 map for the 4th layer's instance norm (undefined there); the
    error names the layer and what to change. Depth 3 on the same images, or batch norm, still build."""
    from gastrodistill.models.layers import ModelConfigError, norm2d

    with pytest.raises(ModelConfigError, match=r"ConvNet depth 4 on 8x8 px.*layer 4.*model.depth"):
        ConvNet(1, 10, 8, width=4, depth=4, pool="max")
    with pytest.raises(ModelConfigError, match="layer 3"):
        ConvNet(1, 10, (4, 4), width=4, depth=3)
    net = ConvNet(1, 10, 8, width=4, depth=3, pool="max")
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ModelConfigError, match="group norm"):  # width 8 / 8 groups: one channel per group
        ConvNet(1, 10, 8, width=8, depth=4, pool="max", norm="group")
    for norm in ("batch", "group", "none"):  # over several values (2 channels per group), or not at all
        ConvNet(1, 10, 8, width=16, depth=4, pool="max", norm=norm)
    # why: over a 1x1 map the project's instance norm outputs its bias whatever the input
    norm = norm2d("instance", 4)
    torch.nn.init.normal_(norm.bias)
    out = norm(torch.randn(2, 4, 1, 1) * 10)
    torch.testing.assert_close(out, norm.bias.detach().view(1, 4, 1, 1).expand(2, 4, 1, 1), rtol=0, atol=1e-3)


def _norms_over_one_value(net: torch.nn.Module, size: tuple[int, int]) -> list[tuple[int, int]]:
    """(channels, channels per group) of every GroupNorm that sees a 1x1 map pooled over one channel, found
    by running the network (an independent check of the size arithmetic of the builders)."""
    hits: list[tuple[int, int]] = []

    def hook(m, inputs, _out):
        cpg = m.num_channels // m.num_groups
        if tuple(inputs[0].shape[-2:]) == (1, 1) and cpg == 1:
            hits.append((m.num_channels, cpg))

    for m in net.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(2, 1, *size))
    return hits


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
@pytest.mark.parametrize("norm", ["instance", "group"])
def test_alexnet_and_resnet_refuse_a_norm_over_a_1x1_map_exactly_when_one_occurs(arch, norm):
    """Built with ``norm="none"`` the network runs at any size; with a norm it is refused
    (``ModelConfigError`` naming the layer) exactly at the sizes where running the same network with that
    norm would put a one-value-per-group norm on a 1x1 map, as hooks on its GroupNorms see."""
    from gastrodistill.models.alexnet import AlexNet
    from gastrodistill.models.layers import ModelConfigError
    from gastrodistill.models.resnet import ResNet18

    cls = AlexNet if arch == "alexnet" else ResNet18
    refused, built = 0, 0
    for size in [(2, 2), (3, 5), (4, 4), (5, 5), (8, 8), (9, 16), (16, 16), (128, 128), (130, 140)]:
        for width in (4, 8, 16):
            stem = {} if arch == "alexnet" else {"stem": "imagenet" if min(size) >= 128 else "cifar"}
            try:
                net = cls(1, 3, size, width=width, norm=norm, **stem)
            except ModelConfigError as exc:
                assert "1x1 feature map" in str(exc) and "layer" in str(exc)
                assert "model.depth" not in str(exc)  # these networks have no depth to lower
                refused += 1
                # the same network without the check (norm applied by hand) does hit a 1x1 one-value norm
                plain = cls(1, 3, size, width=width, norm="none", **stem)
                sizes = []
                for m in plain.modules():
                    if isinstance(m, torch.nn.Conv2d):
                        m.register_forward_hook(
                            lambda m, i, o, sizes=sizes: sizes.append((o.shape[1], tuple(o.shape[-2:])))
                        )
                with torch.no_grad():
                    plain(torch.zeros(2, 1, *size))
                from gastrodistill.models.layers import channels_per_group

                assert any(hw == (1, 1) and channels_per_group(norm, c) == 1 for c, hw in sizes)
                continue
            built += 1
            assert _norms_over_one_value(net, size) == []
    assert refused > 0 and built > 0


@pytest.mark.parametrize("model", ["convnet", "lenet", "alexnet", "resnet18"])
def test_configs_are_partials(compose_cfg, model):
    cfg = compose_cfg([f"model={model}"] + ([] if model == "lenet" else ["model.width=4"]))
    factory = instantiate(cfg.model)
    net = factory(in_channels=3, num_classes=4, image_size=(16, 16))
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    assert net.init_scheme == cfg.model.init


def test_convnet_average_head_is_the_linear_layer_on_the_spatial_mean_of_the_features():
    """head=avg: logits = W · mean over (H, W) of the last feature map + b, recomputed here by a plain loop;
    the classifier has one input per channel whatever the image size, and the flatten head is unchanged."""
    net = ConvNet(1, 3, (12, 10), width=5, depth=2, head="avg").double()
    x = torch.randn(4, 1, 12, 10, dtype=torch.float64)
    fmap = net.features(x).detach()  # [4, 5, 3, 3]
    pooled = torch.stack(
        [
            torch.tensor([float(fmap[i, c].sum()) / (fmap.shape[2] * fmap.shape[3]) for c in range(5)])
            for i in range(4)
        ]
    ).double()
    expected = pooled @ net.classifier.weight.T + net.classifier.bias
    torch.testing.assert_close(net(x), expected)
    assert net.classifier.in_features == 5
    assert ConvNet(1, 3, (12, 10), width=5, depth=2).classifier.in_features == 5 * 3 * 3
    assert ConvNet(1, 3, (40, 40), width=5, depth=2, head="avg").classifier.in_features == 5
    with pytest.raises(
        ValueError, match=r"unknown ConvNet head 'gap' \(model.head\): use one of flatten, avg"
    ):
        ConvNet(1, 3, 8, head="gap")


def test_a_network_is_its_seeds_draws_in_module_order_at_the_schemes_scale():
    """Weight i is the i-th draw of ``torch_generator(init_seed, "model-init")`` over ``modules()`` in order,
    times Xavier's std sqrt(2 / (fan_in + fan_out)) or Kaiming's (ReLU) sqrt(2 / fan_in); biases 0.
    Kills: another gain or fan, a uniform draw, another order, init_seed ignored."""
    for scheme in ("xavier", "kaiming"):
        net = ConvNet(2, 3, (8, 8), width=4, depth=2, init=scheme, init_seed=7)
        g = torch_generator(7, "model-init")
        layers = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
        assert len(layers) == 3
        for m in layers:
            fan_in = m.weight[0].numel()  # input channels x kernel pixels
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()  # output channels x kernel pixels
            std = (2 / (fan_in + fan_out)) ** 0.5 if scheme == "xavier" else (2 / fan_in) ** 0.5
            torch.testing.assert_close(m.weight, torch.randn(m.weight.shape, generator=g) * std)
            assert torch.count_nonzero(m.bias) == 0


def test_initialize_resets_every_norm_to_scale_one_and_shift_zero():
    """A re-initialised (trained) network starts over in its norms too: group, instance and batch norm."""
    nets = [ConvNet(1, 3, 8, width=16, depth=2, norm=norm) for norm in ("instance", "group", "batch")]
    nets.append(ResNet18(1, 3, 8, width=4, blocks=(1, 1)))
    for net in nets:
        with torch.no_grad():
            for p in net.parameters():
                p.normal_()
        initialize(net, "kaiming", torch_generator(0))
        norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm | torch.nn.BatchNorm2d)]
        assert norms
        for m in norms:
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_initialize_refuses_an_unknown_scheme_and_draws_nothing_for_a_meta_network():
    """A network on the meta device (shapes only) stays there: the generator is not drawn from."""
    with pytest.raises(ValueError, match="unknown init scheme 'orthogonal': use one of xavier, kaiming"):
        initialize(ConvNet(1, 3, 8, width=4, depth=1), "orthogonal", torch_generator(0))
    with torch.device("meta"):
        net = ConvNet(1, 3, 8, width=4, depth=2)
    g = torch_generator(0)
    state = g.get_state()
    initialize(net, "xavier", g)
    assert torch.equal(g.get_state(), state)
    assert all(p.is_meta for p in net.parameters())


def test_penultimate_features_leave_no_hook_behind_and_pass_gradients_to_the_images():
    """The hook that reads the last linear layer's input is removed; the features are differentiable in
    ``x`` like the same layers applied by hand (LeNet: the classifier without its last linear layer)."""
    from gastrodistill.models.features import last_linear, penultimate_features

    net = LeNet(1, 3, 16).double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    f = penultimate_features(net, x)
    assert not last_linear(net)._forward_pre_hooks
    want = net.classifier[:-1](net.features(x).flatten(1))
    torch.testing.assert_close(f, want)
    weights = torch.arange(f.shape[1], dtype=torch.float64)
    (grad,) = torch.autograd.grad((f * weights).sum(), x)
    (want_grad,) = torch.autograd.grad((want * weights).sum(), x)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, want_grad)
