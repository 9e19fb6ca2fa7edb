"""Local ZCA whitening: the filter against an independent matrix square root, the layer against scipy's
correlation with a mirrored border, and every network family behind it (``data.zca``,
``model.zca_kernel``)."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from omegaconf import OmegaConf

from gastrodistill.data.zca import LocalZCA, ZCAError, zca_kernel
from gastrodistill.models import AlexNet, ConvNet, LeNet, ResNet18, initialize
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.models.zca import ZCA_KEY, ZCAWhitening, with_zca_kernel, without_zca_kernel, zca_layer
from gastrodistill.utils.seeding import torch_generator

FAMILIES = {
    "convnet": lambda **kw: ConvNet(2, 3, (12, 12), width=4, depth=2, **kw),
    "lenet": lambda **kw: LeNet(2, 3, (12, 12), **kw),
    "alexnet": lambda **kw: AlexNet(2, 3, (12, 12), width=4, hidden=8, **kw),
    "resnet18": lambda **kw: ResNet18(2, 3, (12, 12), width=4, **kw),
}


def correlated_images(n: int = 64, size: int = 24, seed: int = 0) -> torch.Tensor:
    """``[n, 1, size, size]`` stationary images: white noise smoothed by a 5 x 5 box (neighbours correlate
    at about 0.8)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, size + 4, size + 4, generator=g, dtype=torch.float64)
    return torch.nn.functional.avg_pool2d(noise, 5, stride=1)


def redrawn_windows(images: torch.Tensor, k: int, n: int, generator: torch.Generator) -> np.ndarray:
    """``[n, k * k]`` float64 windows of ``images`` at the image and corner draws ``zca_kernel`` makes with
    ``generator`` (image index, then top, then left)."""
    size = images.shape[-1]
    which, top, left = (
        torch.randint(0, hi, (n,), generator=generator).numpy()
        for hi in (len(images), size - k + 1, size - k + 1)
    )
    arr = images.double().numpy()
    return np.stack(
        [arr[i, 0, t : t + k, s : s + k].ravel() for i, t, s in zip(which, top, left, strict=True)]
    )


def numpy_filter(windows: np.ndarray, eps: float) -> np.ndarray:
    """The centre row of (C + eps tr(C) / d I)^(-1/2) of the windows' covariance C (d = k * k), as a k x k
    filter: numpy and scipy's matrix square root, independent of the package."""
    cov = np.cov(windows, rowvar=False)
    d = cov.shape[0]
    inv_sqrt = np.linalg.inv(scipy.linalg.sqrtm(cov + eps * np.trace(cov) / d * np.eye(d)).real)
    k = int(round(d**0.5))
    return inv_sqrt[d // 2].reshape(k, k)


def lag_correlation(x: torch.Tensor, lag: int) -> float:
    """Correlation of horizontally neighbouring pixels ``lag`` px apart, over all images."""
    a, b = x[..., :, :-lag].flatten(), x[..., :, lag:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_the_filter_is_the_centre_row_of_an_independent_inverse_square_root():
    images = correlated_images()
    k, eps = 5, 0.05
    kernel = zca_kernel(images, k, eps, torch_generator(0, "zca-test"), max_windows=4000)
    # the same windows, redrawn with the same generator, through numpy and scipy's matrix square root
    expected = numpy_filter(redrawn_windows(images, k, 4000, torch_generator(0, "zca-test")), eps)
    assert kernel.shape == (1, k, k) and kernel.dtype == torch.float32
    np.testing.assert_allclose(kernel[0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_whitening_removes_the_correlation_of_neighbouring_pixels():
    images = correlated_images(seed=1)
    kernel = zca_kernel(images, 9, 1e-3, torch_generator(1, "zca"), max_windows=20000)
    white = ZCAWhitening(kernel).double()(images)
    for lag in (1, 2, 3):
        assert lag_correlation(images, lag) > 0.3
        assert abs(lag_correlation(white[..., 4:-4, 4:-4], lag)) < 0.08, lag
    fresh = correlated_images(seed=2)  # the filter generalises to images it was not estimated on
    assert abs(lag_correlation(ZCAWhitening(kernel).double()(fresh)[..., 4:-4, 4:-4], 1)) < 0.08


def test_the_layer_is_scipys_correlation_with_a_mirrored_border_per_channel():
    g = torch.Generator().manual_seed(3)
    kernel = torch.randn(2, 3, 3, generator=g)
    x = torch.randn(2, 2, 7, 9, generator=g, dtype=torch.float64)
    out = ZCAWhitening(kernel).double()(x)
    assert out.shape == x.shape
    for n in range(2):
        for c in range(2):
            padded = np.pad(x[n, c].numpy(), 1, mode="reflect")
            want = scipy.signal.correlate2d(padded, kernel[c].double().numpy(), mode="valid")
            np.testing.assert_allclose(out[n, c].detach().numpy(), want, rtol=1e-12, atol=1e-12)


def test_the_layer_is_differentiable_and_its_filter_a_buffer():
    g = torch.Generator().manual_seed(4)
    layer = ZCAWhitening(torch.randn(1, 3, 3, generator=g)).double()
    x = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert list(layer.parameters()) == [] and [n for n, _ in layer.named_buffers()] == ["kernel"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_whitens_its_input_and_keeps_the_filter_through_init(family):
    g = torch.Generator().manual_seed(5)
    kernel = torch.randn(2, 3, 3, generator=g)
    plain = FAMILIES[family]()
    white = FAMILIES[family](zca_kernel=kernel.tolist())
    assert "zca.kernel" not in plain.state_dict() and "zca.kernel" in white.state_dict()
    # the filter adds no parameter: the same weights from the same seed, and initialize leaves it alone
    initialize(plain, "xavier", torch_generator(0, "init"))
    initialize(white, "xavier", torch_generator(0, "init"))
    assert torch.equal(white.zca.kernel[:, 0], kernel)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in white.named_parameters()]
    plain.eval()
    white.eval()
    x = torch.randn(4, 2, 12, 12, generator=g)
    with torch.no_grad():
        assert torch.allclose(white(x), plain(ZCAWhitening(kernel)(x)), atol=1e-5)
        assert not torch.allclose(white(x), plain(x), atol=1e-3)


def test_a_wrong_filter_is_refused_naming_the_key():
    with pytest.raises(ModelConfigError, match=r"model.zca_kernel must be \[1\]\[k\]\[k\]"):
        zca_layer([[1.0, 2.0], [3.0, 4.0]], 1)  # two dimensions
    with pytest.raises(ModelConfigError, match="k odd"):
        zca_layer(torch.ones(1, 2, 2).tolist(), 1)
    with pytest.raises(ModelConfigError, match=r"\[3\]\[k\]\[k\]"):
        zca_layer(torch.ones(1, 3, 3).tolist(), 3)  # one filter for three channels
    with pytest.raises(ModelConfigError, match="non-finite"):
        zca_layer([[[float("nan")]]], 1)
    with pytest.raises(ModelConfigError, match="lower data.zca.kernel_size"):
        ZCAWhitening(torch.ones(1, 9, 9))(torch.ones(1, 1, 4, 4))
    assert isinstance(zca_layer(None, 3), torch.nn.Identity)
    assert isinstance(zca_layer(OmegaConf.create([[[1.0]]]), 1), ZCAWhitening)  # a node from a config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": 4}, "must be odd.*use 5"),
        ({"kernel_size": 0}, "kernel_size must be an odd integer"),
        ({"kernel_size": True}, "kernel_size must be an odd integer"),
        ({"eps": 0}, r"data.zca.eps must be a number > 0"),
        ({"eps": True}, r"data.zca.eps must be a number > 0"),
        ({"max_images": 1}, r"data.zca.max_images must be an integer >= 2"),
        ({"max_windows": 2.5}, r"data.zca.max_windows"),
    ],
)
def test_settings_out_of_range_are_refused(kwargs, match):
    with pytest.raises(ZCAError, match=match):
        LocalZCA(**kwargs)


def test_a_filter_larger_than_the_images_is_refused_with_the_largest_that_fits():
    fits = r"kernel_size = 9 px is larger than the 6x8 px images: use at most 5"
    with pytest.raises(ZCAError, match=fits):
        zca_kernel(torch.zeros(2, 1, 6, 8), 9, 0.1, torch.Generator())


def test_local_zca_draws_its_images_with_the_generator():
    images = correlated_images(n=10)
    asked: list[list[int]] = []

    def read(picks: list[int]) -> list[torch.Tensor]:
        asked[-1].extend(picks)
        return [images[picks].float()]

    def kernel(seed: int) -> torch.Tensor:
        asked.append([])
        return zca.kernel(10, read, torch_generator(seed, "zca"), (1, 24, 24))

    zca = LocalZCA(kernel_size=3, max_images=4, max_windows=500)
    a, b = kernel(0), kernel(0)
    drawn = sorted(set(asked[0]))
    assert torch.equal(a, b) and asked[0] == asked[1] and len(drawn) == 4
    assert not torch.equal(a, kernel(1)) and sorted(set(asked[2])) != drawn


def test_with_zca_kernel_copies_the_config_and_leaves_it_alone_without_a_filter():
    cfg = OmegaConf.create({"_target_": "gastrodistill.models.ConvNet", "_partial_": True, "width": 4})
    OmegaConf.set_struct(cfg, True)  # as Hydra composes it
    assert with_zca_kernel(cfg, None) is cfg
    out = with_zca_kernel(cfg, torch.ones(1, 3, 3))
    assert out[ZCA_KEY] == [[[1.0] * 3] * 3] and ZCA_KEY not in cfg
    assert with_zca_kernel({"width": 4}, [[[2.0]]]) == {"width": 4, ZCA_KEY: [[[2.0]]]}


def test_the_config_copies_resolve_interpolations_of_the_root_config():
    root = OmegaConf.create({"w": 4, "model": {"_target_": "gastrodistill.models.ConvNet", "width": "${w}"}})
    whitened = with_zca_kernel(root.model, torch.ones(1, 3, 3))
    assert whitened["width"] == 4  # a copy detached from the root: ${w} must be resolved before
    assert without_zca_kernel(whitened)["width"] == 4 and ZCA_KEY not in without_zca_kernel(whitened)


def test_the_filter_is_read_batch_by_batch_and_equals_the_one_of_all_images_at_once():
    """``LocalZCA.kernel`` takes its images batch by batch, each batch used and let go before the next is
    read (memory holds one batch and the windows, not every image), and gives the filter of
    :func:`zca_kernel` on all of them, to the bit, whatever the batch size; batches that hold fewer
    images than asked, or another shape, are refused."""
    images = correlated_images(n=40)
    zca = LocalZCA(kernel_size=3, max_images=30, max_windows=3000)
    picks = torch.randperm(40, generator=torch_generator(0, "zca"))[:30].sort().values.tolist()
    g = torch_generator(0, "zca")
    torch.randperm(40, generator=g)  # the draw of the images comes first
    whole = zca_kernel(images[picks].float(), 3, zca.eps, g, 3000)
    for size in (1, 7, 30):
        held: list[int] = []  # batches alive when the next one is read

        def read(which: list[int], size: int = size, held: list[int] = held):
            alive: list[weakref.ref] = []
            for start in range(0, len(which), size):
                held.append(sum(r() is not None for r in alive))
                batch = images[which[start : start + size]].float()
                alive.append(weakref.ref(batch))
                yield batch
                del batch  # this reader's own reference

        assert torch.equal(zca.kernel(40, read, torch_generator(0, "zca"), (1, 24, 24)), whole)
        assert len(held) == -(-30 // size) and max(held) == 0
    with pytest.raises(ZCAError, match="asked for 30 training images and was given 29"):
        zca.kernel(40, lambda which: [images[which[1:]].float()], torch_generator(0, "zca"), (1, 24, 24))
    with pytest.raises(
        ZCAError, match=r"needs training images \[N, 1, 24, 25\], got a batch of shape \(30, 1, 24, 24\)"
    ):
        zca.kernel(40, lambda which: [images[which].float()], torch_generator(0, "zca"), (1, 24, 25))


def test_a_filter_with_zeros_or_negative_numbers_is_a_filter_but_not_one_of_another_shape():
    """Only an all-zero filter is refused: the identity (zeros around a 1) and an all-negative filter
    pass; a non-square filter and a single non-finite number among finite ones are refused."""
    identity = [[[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]]
    x = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(zca_layer(identity, 1)(x), x)
    negative = [[[-0.5, -1.0, -0.5], [-1.0, -2.0, -1.0], [-0.5, -1.0, -0.5]]]
    assert torch.equal(zca_layer(negative, 1).kernel[0, 0], torch.tensor(negative[0]))
    with pytest.raises(ModelConfigError, match=r"\[1\]\[k\]\[k\] .* got shape \[1, 3, 5\]"):
        zca_layer(torch.ones(1, 3, 5).tolist(), 1)
    with pytest.raises(ModelConfigError, match="non-finite"):
        zca_layer([[[1.0, float("inf"), 1.0], [1.0] * 3, [1.0] * 3]], 1)


def test_the_layer_keeps_its_own_copy_of_the_filter():
    kernel = torch.ones(1, 3, 3)
    layer = ZCAWhitening(kernel)
    kernel.zero_()  # the caller's tensor changes afterwards
    assert torch.equal(layer.kernel, torch.ones(1, 1, 3, 3))


def test_without_zca_kernel_returns_a_copy_and_leaves_the_config_alone():
    cfg = OmegaConf.create({"_target_": "gastrodistill.models.ConvNet", "width": 4, ZCA_KEY: [[[1.0]]]})
    OmegaConf.set_struct(cfg, True)  # as Hydra composes it
    out = without_zca_kernel(cfg)
    assert ZCA_KEY not in out and out["width"] == 4 and cfg[ZCA_KEY] == [[[1.0]]]
    plain = OmegaConf.create({"width": 4})
    assert without_zca_kernel(plain) is plain
    mapping = {"width": 4, ZCA_KEY: [[[1.0]]]}
    assert without_zca_kernel(mapping) == {"width": 4} and ZCA_KEY in mapping


def test_the_filter_of_float32_images_is_computed_in_float64():
    """The covariance and its inverse square root in float64 (in float32 the filter is off by ~1e-6 of its
    largest tap with this small ``eps``): against numpy on the same windows, to float32 rounding."""
    images = correlated_images().float()
    k, eps = 5, 1e-3
    kernel = zca_kernel(images, k, eps, torch_generator(0, "zca-test"), max_windows=4000)
    expected = numpy_filter(redrawn_windows(images, k, 4000, torch_generator(0, "zca-test")), eps)
    np.testing.assert_allclose(kernel[0].numpy(), expected, rtol=0, atol=3e-7 * np.abs(expected).max())


def test_a_filter_as_large_as_the_images_fits_and_the_advice_keeps_an_odd_side():
    """k = the image side: every window is a whole image (one position), so the filter is the centre row
    of the images' own whitening matrix; one px more is refused, naming the largest odd size that fits."""
    images = correlated_images(n=200, size=5, seed=3)
    kernel = zca_kernel(images, 5, 0.1, torch_generator(0, "zca"), max_windows=3000)
    which = torch.randint(0, 200, (3000,), generator=torch_generator(0, "zca")).numpy()
    expected = numpy_filter(images.numpy().reshape(200, 25)[which], 0.1)  # whole images as the windows
    np.testing.assert_allclose(kernel[0].numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(
        ZCAError, match=r"kernel_size = 9 px is larger than the 7x8 px images: use at most 7$"
    ):
        zca_kernel(torch.zeros(2, 1, 7, 8), 9, 0.1, torch.Generator())


def test_the_defaults_are_the_documented_ones_and_data_zca_is_null_or_a_local_zca():
    """9 px and eps 0.1 (conf/data/*.yaml's example), 2,000 images and 200,000 windows (this module's
    docstring); ``data.zca`` as anything but null or a LocalZCA is refused naming the target, and null
    has no settings; no images at all are refused naming the shape expected."""
    from gastrodistill.data.zca import checked_zca, zca_settings

    assert LocalZCA().settings() == {"kernel_size": 9, "eps": 0.1, "max_images": 2000, "max_windows": 200_000}
    assert checked_zca(None) is None and zca_settings(None) is None
    zca = LocalZCA()
    assert checked_zca(zca) is zca
    with pytest.raises(
        ZCAError, match=r"data.zca must be null or a node with _target_: gastrodistill.data.zca"
    ):
        checked_zca({"kernel_size": 9})
    with pytest.raises(ZCAError, match=r"needs training images \[N, C, H, W\], got shape \(0, 1, 8, 8\)"):
        zca_kernel(torch.zeros(0, 1, 8, 8), 3, 0.1, torch.Generator())
