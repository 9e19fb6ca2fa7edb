"""``models.weights``: a network's weights through a safetensors file, exactly, and refused when they do
not fit."""

from __future__ import annotations

import pytest
import torch

from gastrodistill.models import ConvNet
from gastrodistill.models.weights import load_weights, save_weights


def _net(seed: int) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(in_channels=1, num_classes=3, width=4, depth=2, image_size=16)


def test_weights_come_back_bit_for_bit_and_the_file_holds_no_pickle(tmp_path):
    a, b = _net(0), _net(1)
    path = save_weights(a, tmp_path / "net.safetensors")
    assert path.is_file() and not list(tmp_path.glob("*.tmp*"))  # renamed into place, nothing left over
    assert path.read_bytes()[8:9] == b"{"  # safetensors: an 8-byte length, then its JSON header
    load_weights(b, path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb)
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(a.eval()(x), b.eval()(x))


def test_weights_of_another_shape_are_refused(tmp_path):
    path = save_weights(_net(0), tmp_path / "net.safetensors")
    wider = ConvNet(in_channels=1, num_classes=3, width=8, depth=2, image_size=16)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_weights(wider, path)


def test_weights_with_missing_or_extra_tensors_are_refused(tmp_path):
    """Names must fit exactly (``strict``): a deeper network has tensors the file lacks, a shallower one
    lacks tensors the file holds."""
    path = save_weights(_net(0), tmp_path / "net.safetensors")
    deeper = ConvNet(in_channels=1, num_classes=3, width=4, depth=3, image_size=16)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_weights(deeper, path)
    shallower = ConvNet(in_channels=1, num_classes=3, width=4, depth=1, image_size=16)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_weights(shallower, path)


def test_the_file_holds_the_buffers_too_so_a_whitening_filter_comes_back(tmp_path):
    """The state dict, not only the parameters: a network's ZCA filter (a buffer) is in the file and
    replaces the receiving network's; a str path gives the Path back."""
    from safetensors.torch import load_file

    kernel = torch.arange(9.0).reshape(1, 3, 3) + 1
    a = ConvNet(1, 3, 16, width=4, depth=2, zca_kernel=kernel)
    path = save_weights(a, str(tmp_path / "net.safetensors"))
    assert path == tmp_path / "net.safetensors"
    assert set(load_file(path)) == set(a.state_dict()) and "zca.kernel" in load_file(path)
    b = load_weights(ConvNet(1, 3, 16, width=4, depth=2, zca_kernel=-kernel), path)
    assert torch.equal(b.zca.kernel, a.zca.kernel)
