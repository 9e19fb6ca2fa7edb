"""``public_config``, the config as it reaches W&B and the artifact cards, holds no folder or file."""

from __future__ import annotations

from omegaconf import OmegaConf

from gastrodistill.utils.privacy import public_config


def test_folders_are_redacted_with_or_without_a_slash():
    """``audit.sets`` and ``distill.resume`` hold folders whose key does not say so; a folder relative to
    the working directory has no slash (``audit.sets={soft: StMary_distilled}`` reached the W&B config)."""
    cfg = OmegaConf.create(
        {
            "audit": {"sets": {"soft": "StMary_distilled", "hard": "/data/StMary/hard"}, "closest_pairs": 8},
            "distill": {"resume": "run_2026_stmary", "mode": "soft", "lr_images": 0.01},
            "eval": {"distilled_dirs": {"soft": "x"}},
            "paths": {"data_root": "/data/StMary"},
            "model": {"_target_": "gastrodistill.models.ConvNet", "norm": "instance"},
        }
    )
    assert public_config(cfg) == {
        "audit": {"sets": {"soft": "<redacted>", "hard": "<redacted>"}, "closest_pairs": 8},
        "distill": {"resume": "<redacted>", "mode": "soft", "lr_images": 0.01},
        "eval": {},  # a key naming folders is left out whole
        "model": {"_target_": "gastrodistill.models.ConvNet", "norm": "instance"},
    }
    # a keyword is no path, and a value with a slash is redacted under any key
    assert public_config({"distill": {"resume": "last"}, "note": "a/b"}) == {
        "distill": {"resume": "last"},
        "note": "<redacted>",
    }
    # only those keys: a W&B logger's `resume: allow` is a setting (a reviewer's case); a part of the config
    # names where it sits
    assert public_config({"logger": {"wandb": {"resume": "allow"}}}) == {
        "logger": {"wandb": {"resume": "allow"}}
    }
    assert public_config(cfg.distill, at="distill")["resume"] == "<redacted>"
    assert public_config(cfg.distill)["resume"] == "run_2026_stmary"  # without `at`, a top-level `resume`
