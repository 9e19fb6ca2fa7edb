"""Every network family against a recomputation written out here: ``torch.nn.functional`` convolutions and
linear maps with the network's own weights, and the norms, pools, activations, heads and residual paths by
hand (means and variances, padded blocks), in float64. Each recomputation reads every parameter of the
network once by name, so a layer added, dropped or given another norm, pool, width or stride fails it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from gastrodistill.models import AlexNet, ConvNet, LeNet, ResNet18

EPS = 1e-5  # torch's norm epsilon
CONF = Path(__file__).resolve().parents[2] / "conf" / "model"

ACTS = {
    "relu": lambda x: x.clamp_min(0),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "tanh": lambda x: (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()),
    "elu": lambda x: torch.where(x > 0, x, x.exp() - 1),
}


class Params:
    """The network's parameters by name; :meth:`unread` lists those a recomputation never asked for."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.params = dict(net.named_parameters())
        self.read: set[str] = set()

    def __call__(self, name: str) -> torch.Tensor:
        self.read.add(name)
        return self.params[name]

    def unread(self) -> list[str]:
        return sorted(set(self.params) - self.read)


def groups_of(channels: int) -> int:
    """The project's group norm: the largest divisor of ``channels`` that is at most 8 groups."""
    return max(d for d in range(1, 9) if channels % d == 0)


def normed(x, kind: str, p: Params, name: str):
    """Norm ``kind`` by hand: statistics over the batch (batch), a group of channels (group) or one
    channel (instance) and the pixels; then the affine weight and bias ``name.weight``, ``name.bias``."""
    if kind == "none":
        return x
    n, c = x.shape[:2]
    if kind == "batch":
        mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
        y = (x - mean) / (var + EPS).sqrt()
    else:
        xg = x.reshape(n, c if kind == "instance" else groups_of(c), -1)
        mean, var = xg.mean(-1, keepdim=True), xg.var(-1, unbiased=False, keepdim=True)
        y = ((xg - mean) / (var + EPS).sqrt()).reshape(x.shape)
    return y * p(f"{name}.weight").view(1, -1, 1, 1) + p(f"{name}.bias").view(1, -1, 1, 1)


def halved(x, kind: str):
    """A 2x2 stride-2 pool in ceil mode by hand: a partial block at an odd border pools what it holds."""
    if kind == "none":
        return x
    n, c, h, w = x.shape
    hh, ww = -(-h // 2), -(-w // 2)
    blocks = torch.full(
        (n, c, 2 * hh, 2 * ww), float("nan") if kind == "avg" else -float("inf"), dtype=x.dtype
    )
    blocks[..., :h, :w] = x
    blocks = blocks.reshape(n, c, hh, 2, ww, 2)
    return blocks.nanmean((3, 5)) if kind == "avg" else blocks.amax((3, 5))


def block_mean(x, out: tuple[int, int]):
    """An adaptive average pool to ``out`` where it divides the map evenly: the mean of equal blocks."""
    n, c, h, w = x.shape
    assert h % out[0] == 0 and w % out[1] == 0, "choose sizes the pool divides evenly"
    return x.reshape(n, c, out[0], h // out[0], out[1], w // out[1]).mean((3, 5))


def linear(x, p: Params, name: str):
    return x @ p(f"{name}.weight").T + p(f"{name}.bias")


def conv(x, p: Params, name: str, padding: int, stride: int = 1, bias: bool = True):
    return F.conv2d(x, p(f"{name}.weight"), p(f"{name}.bias") if bias else None, stride, padding)


def images(channels: int, size: tuple[int, int], n: int = 3):
    return torch.randn(n, channels, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def check(net, p: Params, x, expected):
    torch.testing.assert_close(net(x), expected)
    assert p.unread() == []


@pytest.mark.parametrize(
    ("norm", "pool", "act", "head", "width", "size"),
    [
        ("instance", "avg", "relu", "flatten", 5, (13, 10)),
        ("group", "max", "leaky_relu", "avg", 12, (9, 12)),
        ("batch", "none", "tanh", "flatten", 4, (6, 5)),
        ("none", "avg", "elu", "avg", 4, (7, 7)),
    ],
)
def test_convnet_is_conv_norm_act_pool_blocks_and_a_linear_head_recomputed_by_hand(
    norm, pool, act, head, width, size
):
    """Kills: another norm (or its affine part, or group count), pool, activation or head, a conv without
    its bias or padding, a pooled size rounded down."""
    net = ConvNet(2, 3, size, width=width, depth=2, norm=norm, act=act, pool=pool, head=head).double()
    x, p = images(2, size), Params(net)
    f = x
    for i in range(2):  # each block: features.{4i} conv, {4i+1} norm, {4i+2} activation, {4i+3} pool
        f = halved(
            ACTS[act](normed(conv(f, p, f"features.{4 * i}", 1), norm, p, f"features.{4 * i + 1}")), pool
        )
    check(net, p, x, linear(f.flatten(1) if head == "flatten" else f.mean((2, 3)), p, "classifier"))


@pytest.mark.parametrize(("act", "size"), [("relu", (13, 11)), ("tanh", (40, 20))])
def test_lenet_is_two_padded_5x5_convolutions_with_max_pools_and_three_linear_layers(act, size):
    """13x11 px: maps of 7x6 and 4x3 (ceil mode), under the 5x5 cap; 40x20 px: 10x5, averaged to 5x5."""
    net = LeNet(2, 3, size, act=act).double()
    x, p = images(2, size), Params(net)
    f = halved(ACTS[act](conv(x, p, "features.0", 2)), "max")
    f = halved(ACTS[act](conv(f, p, "features.3", 2)), "max")
    f = block_mean(f, (min(5, f.shape[2]), min(5, f.shape[3]))).flatten(1)
    f = ACTS[act](linear(ACTS[act](linear(f, p, "classifier.0")), p, "classifier.2"))
    check(net, p, x, linear(f, p, "classifier.4"))
    # LeNet-5's own numbers at 32 px: 6 and 16 maps, 16 x 5 x 5 = 400 inputs, then 120, 84, the classes
    shapes = [tuple(m.weight.shape) for m in LeNet(1, 10, 32).modules() if hasattr(m, "weight")]
    assert shapes == [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]


@pytest.mark.parametrize(
    ("norm", "act", "size"),
    [
        ("none", "relu", (64, 16)),
        ("group", "tanh", (13, 9)),
        ("batch", "elu", (32, 32)),
        ("instance", "relu", (20, 20)),
    ],
)
def test_alexnet_is_five_convolutions_three_max_pools_and_three_linear_layers(norm, act, size):
    """Convolutions of width w, 2w, 3w, 2w, 2w channels (5, 5, 3, 3, 3 px, same padding), a max pool after
    the 1st, 2nd and 5th, the map averaged to at most 4x4, then hidden, hidden / 2 and the classes."""
    width, hidden = 4, 12
    net = AlexNet(2, 3, size, width=width, hidden=hidden, norm=norm, act=act).double()
    x, p = images(2, size), Params(net)
    f = x
    # features: (conv index, kernel) of each conv; norm at index + 1, activation at + 2; pools at 3, 7, 17
    for index, k in ((0, 5), (4, 5), (8, 3), (11, 3), (14, 3)):
        f = ACTS[act](normed(conv(f, p, f"features.{index}", k // 2), norm, p, f"features.{index + 1}"))
        if index in (0, 4, 14):
            f = halved(f, "max")
    f = block_mean(f, (min(4, f.shape[2]), min(4, f.shape[3])))
    f = ACTS[act](linear(ACTS[act](linear(f.flatten(1), p, "classifier.0")), p, "classifier.2"))
    check(net, p, x, linear(f, p, "classifier.4"))
    convs = [tuple(m.weight.shape) for m in net.features if isinstance(m, torch.nn.Conv2d)]
    w = width
    assert convs == [
        (w, 2, 5, 5),
        (2 * w, w, 5, 5),
        (3 * w, 2 * w, 3, 3),
        (2 * w, 3 * w, 3, 3),
        (2 * w, 2 * w, 3, 3),
    ]
    assert [tuple(m.weight.shape)[0] for m in net.classifier if isinstance(m, torch.nn.Linear)] == [
        hidden,
        hidden // 2,
        3,
    ]


def resnet_block(x, p: Params, name: str, stride: int, norm: str, act: str):
    """A basic block by hand: two 3x3 convolutions (no bias; the first strided), a norm after each, the
    activation after the first and after the sum with the shortcut (a strided 1x1 convolution and a norm
    where the block changes the width or the size, else the input itself)."""
    out = ACTS[act](normed(conv(x, p, f"{name}.conv1", 1, stride, bias=False), norm, p, f"{name}.norm1"))
    out = normed(conv(out, p, f"{name}.conv2", 1, bias=False), norm, p, f"{name}.norm2")
    cin, cout = x.shape[1], out.shape[1]
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = normed(
            conv(x, p, f"{name}.shortcut.0", 0, stride, bias=False), norm, p, f"{name}.shortcut.1"
        )
    return ACTS[act](out + shortcut)


@pytest.mark.parametrize(
    ("blocks", "norm", "act", "size", "stem"),
    [
        ((1, 1), "group", "relu", (9, 7), "cifar"),
        ((2, 1, 1), "batch", "leaky_relu", (10, 10), "cifar"),
        ((1, 0, 1), "instance", "elu", (6, 8), "cifar"),  # an empty stage halves nothing
        ((1, 1), "group", "relu", (128, 128), "imagenet"),  # stem=auto from 128 px on
        ((1, 1), "none", "tanh", (127, 130), "cifar"),  # and the CIFAR stem below
    ],
)
def test_resnet_is_a_stem_and_stages_of_basic_blocks_and_a_pooled_linear_head(blocks, norm, act, size, stem):
    """Stage i has width * 2**i channels and its first block strides 2 (from the second stage on); the
    CIFAR stem is a 3x3 convolution, the ImageNet stem a 7x7/2 one and a 3x3/2 max pool (padding 1)."""
    width = 4
    net = ResNet18(2, 3, size, width=width, blocks=blocks, norm=norm, act=act).double()
    x, p = images(2, size, n=2), Params(net)
    if stem == "cifar":
        f = ACTS[act](normed(conv(x, p, "stem.0", 1, bias=False), norm, p, "stem.1"))
    else:
        f = ACTS[act](normed(conv(x, p, "stem.0", 3, 2, bias=False), norm, p, "stem.1"))
        f = F.pad(f, (1, 1, 1, 1), value=-float("inf")).unfold(2, 3, 2).unfold(3, 3, 2).amax((-1, -2))
    index = 0
    for stage, count in enumerate(blocks):
        for j in range(count):
            f = resnet_block(f, p, f"layers.{index}", 2 if stage > 0 and j == 0 else 1, norm, act)
            assert f.shape[1] == width * 2**stage
            index += 1
    check(net, p, x, linear(f.mean((2, 3)), p, "classifier"))


def test_a_resnet_stage_of_no_blocks_neither_halves_the_map_nor_is_refused_for_it():
    """blocks (1, 0, 1) on 4x4 px: the last block sees 2x2 (the empty stage halves nothing), so an
    instance norm is allowed; on 2x2 px that block sees 1x1 and is refused, naming layer 3; with no blocks
    at all the stem's norm on a 1x1 image is refused (layer 1)."""
    from gastrodistill.models.layers import ModelConfigError

    net = ResNet18(1, 3, (4, 4), width=4, blocks=(1, 0, 1), norm="instance")
    seen = []
    net.layers[1].register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    net(torch.randn(2, 1, 4, 4))
    assert seen == [(2, 2)]
    with pytest.raises(ModelConfigError, match="layer 3 would normalise a 1x1 feature map"):
        ResNet18(1, 3, (2, 2), width=4, blocks=(1, 0, 1), norm="instance")
    with pytest.raises(ModelConfigError, match="layer 1 would normalise"):  # no blocks: the stem's norm alone
        ResNet18(1, 3, (1, 1), width=4, blocks=(0, 0, 0, 0))


@pytest.mark.parametrize(
    ("network", "config"),
    [(ConvNet, "convnet"), (LeNet, "lenet"), (AlexNet, "alexnet"), (ResNet18, "resnet18")],
)
def test_the_constructor_defaults_are_the_model_configs_values(network, config):
    """A network built from Python without keywords is the one ``model=<config>`` builds."""
    values = yaml.safe_load((CONF / f"{config}.yaml").read_text())
    defaults = {
        k: (list(v.default) if isinstance(v.default, tuple) else v.default)
        for k, v in inspect.signature(network).parameters.items()
        if v.default is not inspect.Parameter.empty
    }
    keys = {k: v for k, v in values.items() if not k.startswith("_")}
    assert keys and {k: defaults[k] for k in keys} == keys
