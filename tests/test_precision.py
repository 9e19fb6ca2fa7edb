"""Training precisions by Lightning's names (utils.precision): the names a config may give, and the autocast
each one enters in the hand-written loops."""

from __future__ import annotations

import pytest
import torch

from gastrodistill.utils.precision import lightning_precision, precision_autocast


def test_lightnings_names_and_the_short_ones_read_as_lightnings():
    read = {v: lightning_precision(v, "k") for v in ("32-true", "bf16-mixed", "32", 32, "bf16")}
    assert read == {
        "32-true": "32-true",
        "bf16-mixed": "bf16-mixed",
        "32": "32-true",
        32: "32-true",
        "bf16": "bf16-mixed",
    }


@pytest.mark.parametrize(
    ("value", "shown"), [("16-mixed", "'16-mixed'"), (16, "16"), ("fp8", "'fp8'"), (None, "None")]
)
def test_another_precision_is_refused_naming_the_key_and_the_value_as_given(value, shown):
    """Float16 autocast is one of Lightning's names but not accepted by the loops (no gradient scaler)."""
    with pytest.raises(ValueError) as info:
        lightning_precision(value, "eval.standard.precision")
    assert str(info.value) == (
        f"eval.standard.precision must be one of ['32-true', 'bf16-mixed'] (or 32, bf16), got {shown}"
    )


def _product_dtype(precision, device="cpu"):
    a = torch.ones(4, 4)
    with precision_autocast(precision, device):
        return (a @ a).dtype


def test_the_autocast_computes_in_the_precisions_own_dtype_and_32_true_in_float32():
    """A matrix product inside the context: bfloat16 for bf16-mixed, float16 for 16-mixed (mutants: the two
    dtypes swapped, autocast enabled for 32-true); weights stay float32 either way."""
    assert _product_dtype("bf16-mixed") == torch.bfloat16
    assert _product_dtype("16-mixed") == torch.float16
    assert _product_dtype("32-true") == torch.float32
    assert _product_dtype("32") == torch.float32  # a short name is read by lightning_precision first


def test_the_autocast_is_for_the_type_of_the_device_given():
    """``cuda:1`` is autocast of device type cuda (mutant: always the CPU's)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: torch warns and disables it
        assert precision_autocast("bf16-mixed", "cuda:1").device == "cuda"
    assert precision_autocast("bf16-mixed", torch.device("cpu")).device == "cpu"
