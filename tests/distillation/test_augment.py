"""DSA augmentation: differentiable (float64 gradcheck), label-preserving, horizontal flips only, seeded."""

from __future__ import annotations

import math

import pytest
import torch

from gastrodistill.distillation.augment import DSA
from gastrodistill.utils.seeding import torch_generator

FULL = {"flip": True, "rotate": 15.0, "scale": 0.15, "translate": 0.1, "brightness": 0.2, "contrast": 0.2}


def images(n=4, c=1, h=6, w=5, seed=0, dtype=torch.double):
    return torch.randn(n, c, h, w, generator=torch_generator(seed, "img"), dtype=dtype)


def test_gradcheck_of_the_full_augmentation_wrt_its_input():
    dsa = DSA(**FULL)
    x = images().requires_grad_(True)
    params = dsa.sample(len(x), torch_generator(1, "p"))
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, params), (x,), eps=1e-6, atol=1e-8)
    out = dsa(x, torch_generator(1, "p"))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_generator_same_output_other_seed_other_output():
    dsa = DSA(**FULL)
    x = images(8, c=2)
    a = dsa(x, torch_generator(3, "aug"))
    b = dsa(x, torch_generator(3, "aug"))
    c = dsa(x, torch_generator(4, "aug"))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_siamese_pair_shares_parameters():
    dsa = DSA(**FULL)
    x = images(5)
    p = dsa.sample(5, torch_generator(0, "pair"))
    assert torch.equal(dsa.apply(x, p), dsa.apply(x.clone(), p))
    assert torch.equal(dsa.apply(x, p), dsa(x, torch_generator(0, "pair")))


def test_flip_only_mirrors_horizontally_and_never_vertically():
    dsa = DSA(flip=True)
    x = images(64, h=5, w=7, seed=2)
    out = dsa(x, torch_generator(5, "flip"))
    flipped = 0
    for xi, oi in zip(x, out, strict=True):
        if torch.equal(oi, xi.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(oi, xi)
        assert not torch.equal(oi, xi.flip(-2))
    assert 10 < flipped < 54  # about half of them


def test_geometry_rotation_and_shift_act_as_stated():
    # A 90-degree rotation of a square image is exact (bilinear samples land on pixel centres).
    x = images(1, h=6, w=6, seed=3)
    dsa = DSA(flip=False, rotate=90.0)
    p = dsa.sample(1, torch_generator(0))
    p.angle[:] = math.pi / 2
    out = dsa.apply(x, p)
    assert torch.allclose(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-12) or torch.allclose(
        out, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-12
    )
    # A shift of one pixel (2/W in grid units) moves the picture by one column, zeros entering.
    dsa = DSA(flip=False, translate=0.5)
    p = dsa.sample(1, torch_generator(0))
    p.shift_x[:], p.shift_y[:] = 2 / 6, 0.0
    out = dsa.apply(x, p)
    assert torch.allclose(out[..., :-1], x[..., 1:], atol=1e-12)
    assert torch.allclose(out[..., -1], torch.zeros_like(out[..., -1]))


def test_intensity_jitter_is_an_affine_map_of_each_image():
    dsa = DSA(flip=False, brightness=0.3, contrast=0.3)
    x = images(6)
    out = dsa(x, torch_generator(1))
    for xi, oi in zip(x, out, strict=True):  # an affine map of the intensities per image
        a = torch.stack([xi.flatten(), torch.ones(xi.numel(), dtype=xi.dtype)], 1)
        coef = torch.linalg.lstsq(a, oi.flatten()).solution
        assert torch.allclose(a @ coef, oi.flatten(), atol=1e-10)
        assert 0.7 - 1e-9 <= coef[0] <= 1.3 + 1e-9


def test_contrast_then_brightness_are_the_stated_maps_drawn_uniformly():
    """Each image's deviation from its own mean scaled by c, then b added; c uniform on [1 - 0.2, 1 + 0.2]
    and b on [-0.3, 0.3] (both ranges spanned, half the draws within half the width)."""
    dsa = DSA(flip=False, brightness=0.3, contrast=0.2)
    x = images(3, c=2)
    p = dsa.sample(3, torch_generator(0))
    p.brightness = torch.tensor([0.3, -0.1, 0.0], dtype=torch.float64)
    p.contrast = torch.tensor([1.2, 0.8, 1.0], dtype=torch.float64)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    expect = (x - mean) * p.contrast.view(-1, 1, 1, 1) + mean + p.brightness.view(-1, 1, 1, 1)
    torch.testing.assert_close(dsa.apply(x, p), expect, rtol=0, atol=1e-12)
    q = dsa.sample(4000, torch_generator(1))
    for values, half_width in ((q.brightness, 0.3), (q.contrast - 1, 0.2)):
        assert half_width * 0.99 < values.abs().max() <= half_width
        assert abs(float((values.abs() < half_width / 2).double().mean()) - 0.5) < 0.04  # 5 binomial sds


def test_zoom_magnifies_about_the_centre_as_bilinear_sampling_does():
    """A zoom by 1.25 (``scale`` drawn 1.25): output pixel j, at u = (2j + 1) / W - 1 in ``affine_grid``'s
    units, samples the input at u / 1.25, i.e. at pixel ((u / 1.25 + 1) W - 1) / 2: scipy's bilinear
    ``map_coordinates`` there (inside the image, so no padding is involved). Draws span [0.5, 1.5]."""
    import numpy as np
    from scipy.ndimage import map_coordinates

    x = images(1, h=8, w=8, seed=4)
    dsa = DSA(flip=False, scale=0.5)
    p = dsa.sample(1, torch_generator(0))
    p.scale[:] = 1.25
    u = (2 * np.arange(8) + 1) / 8 - 1
    src = ((u / 1.25 + 1) * 8 - 1) / 2
    rows, cols = np.meshgrid(src, src, indexing="ij")
    expect = map_coordinates(x[0, 0].numpy(), [rows, cols], order=1)
    np.testing.assert_allclose(dsa.apply(x, p)[0, 0].numpy(), expect, rtol=0, atol=1e-12)
    q = dsa.sample(4000, torch_generator(1)).scale
    assert 0.5 <= q.min() < 0.505 and 1.495 < q.max() <= 1.5


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="distill.dsa.rotate"):
        DSA(rotate=-1)
    with pytest.raises(ValueError, match="scale"):
        DSA(scale=1.0)
    with pytest.raises(ValueError, match="padding_mode"):
        DSA(padding_mode="wrap")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        DSA()(torch.zeros(3, 4, 4), torch_generator(0))


def test_integer_shift_is_a_crop_of_the_reflect_padded_image():
    """``shift_px``: each image equals a window of the image mirrored at its border (numpy's reflect pad),
    at the drawn offset; every offset in [-s, s] occurs; gradients pass (float64 gradcheck)."""
    import numpy as np

    s = 2
    dsa = DSA(flip=False, shift_px=s)
    x = images(200, c=2, h=6, w=5, seed=7)
    p = dsa.sample(len(x), torch_generator(2, "shift"))
    out = dsa.apply(x, p)
    assert out.shape == x.shape
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (s, s), (s, s)), mode="reflect")
    for i in range(len(x)):
        dy, dx = int(p.shift_px_y[i]), int(p.shift_px_x[i])
        expect = padded[i, :, s - dy : s - dy + 6, s - dx : s - dx + 5]  # pixel (r, c) <- (r - dy, c - dx)
        np.testing.assert_array_equal(out[i].numpy(), expect)
    assert set(p.shift_px_x.tolist()) == set(range(-s, s + 1)) == set(p.shift_px_y.tolist())
    # the default memory format (a channels-last result made bfloat16 convolutions 2-3x slower)
    assert out.is_contiguous() and out.stride() == x.stride()
    small = images(3, h=6, w=5).requires_grad_(True)
    q = dsa.sample(3, torch_generator(3, "shift"))
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, q), (small,), eps=1e-6, atol=1e-8)


def test_shift_off_draws_what_the_settings_drew_before_it_existed():
    """``shift_px: 0`` (the default) draws nothing more, so earlier configurations keep their streams."""
    a, b = torch_generator(4, "same"), torch_generator(4, "same")
    pa = DSA(**FULL).sample(7, a)
    pb = DSA(**FULL, shift_px=0).sample(7, b)
    assert torch.equal(pa.angle, pb.angle) and torch.equal(pa.flip, pb.flip) and pb.shift_px_x is None
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    with_shift = torch_generator(4, "same")
    pc = DSA(**FULL, shift_px=1).sample(7, with_shift)
    assert torch.equal(pa.contrast, pc.contrast)  # the shifts are drawn after the other parameters


def test_bad_shift_settings_are_named():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="distill.dsa.shift_px"):
            DSA(shift_px=bad)
    with pytest.raises(ValueError, match="shift_px=4 needs images larger than 4 px"):
        DSA(shift_px=4)(torch.zeros(2, 1, 4, 8), torch_generator(0))


def test_rotation_and_translation_are_drawn_over_their_stated_ranges():
    """``rotate`` in degrees: angles (radians) uniform on [-15°, 15°]; ``translate`` a fraction of the image
    size on each axis: shifts uniform on [-0.1, 0.1] of it, i.e. [-0.2, 0.2] in ``affine_grid``'s units
    (the image spans 2 of them; a one-pixel shift of a 6-wide image is 2/6, as tested above)."""
    q = DSA(flip=False, rotate=15.0, translate=0.1).sample(4000, torch_generator(2))
    for values, bound in ((q.angle, math.radians(15.0)), (q.shift_x / 2, 0.1), (q.shift_y / 2, 0.1)):
        assert values.abs().max() <= bound and values.abs().max() > 0.99 * bound
        assert values.min() < -0.99 * bound
        assert abs(float((values.abs() < bound / 2).double().mean()) - 0.5) < 0.04  # 5 binomial sds
    assert not torch.equal(q.shift_x, q.shift_y)


@pytest.mark.parametrize("mode", ["zeros", "border", "reflection"])
def test_padding_mode_fills_what_a_shift_uncovers(mode):
    """A shift by two pixels to the left: the two uncovered columns are zeros, the edge column repeated,
    or the image mirrored about its edge (columns W-1 then W-2), as ``padding_mode`` says."""
    x = images(2, h=6, w=6, seed=5)
    dsa = DSA(flip=False, translate=0.5, padding_mode=mode)
    p = dsa.sample(2, torch_generator(0))
    p.shift_x[:], p.shift_y[:] = 4 / 6, 0.0
    out = dsa.apply(x, p)
    torch.testing.assert_close(out[..., :4], x[..., 2:], rtol=0, atol=1e-12)
    expect = {
        "zeros": torch.zeros_like(x[..., :2]),
        "border": x[..., [5, 5]],
        "reflection": x[..., [5, 4]],
    }[mode]
    torch.testing.assert_close(out[..., 4:], expect, rtol=0, atol=1e-12)


def test_a_drawn_flip_mirrors_that_image_and_no_flip_draws_none():
    dsa = DSA(flip=True)
    x = images(3)
    p = dsa.sample(3, torch_generator(0))
    p.flip = torch.tensor([True, False, True])
    out = dsa.apply(x, p)
    assert (
        torch.equal(out[0], x[0].flip(-1))
        and torch.equal(out[1], x[1])
        and torch.equal(out[2], x[2].flip(-1))
    )
    assert not DSA(flip=False).sample(500, torch_generator(0)).flip.any()


def test_contrast_of_one_and_parameters_without_shifts_are_refused():
    with pytest.raises(ValueError, match="contrast must be < 1"):
        DSA(contrast=1.0)
    with pytest.raises(ValueError, match="drawn without shift_px"):
        DSA(flip=False, shift_px=1).apply(images(2), DSA(flip=False).sample(2, torch_generator(0)))
