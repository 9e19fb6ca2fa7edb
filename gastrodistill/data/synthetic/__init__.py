"""Synthetic gastric X-rays (SPEC §1.3): the embedded default data, written in the user's layout."""

from gastrodistill.data.synthetic.config import SyntheticConfig, SyntheticConfigError
from gastrodistill.data.synthetic.generator import generate_dataset, render_image
from gastrodistill.data.synthetic.writer import SyntheticOutputError

__all__ = [
    "SyntheticConfig",
    "SyntheticConfigError",
    "SyntheticOutputError",
    "generate_dataset",
    "render_image",
]
