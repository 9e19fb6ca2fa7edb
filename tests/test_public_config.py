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


def test_each_private_key_part_group_and_keyword_is_honoured():
    """Keys holding path, root, dir, file, patient or manifest (any case) and the paths and hydra groups are
    left out; a keyword of distill.resume is kept with spaces around it, a folder in a list under audit.sets
    is redacted, a backslash is a path, and interpolations are resolved first (mutation review of
    utils/privacy.py: one mutant per part)."""
    cfg = OmegaConf.create(
        {
            "data": {
                "PatientColumn": "PatientID",
                "manifest_name": "m.csv",
                "ImageRoot": "x",
                "cacheDir": "y",
                "logFile": "z",
                "dataPath": "w",
                "seed": 3,
            },
            "hydra": {"job": {"name": "x"}},
            "paths": {"output_dir": "/o"},
            "distill": {"resume": " auto "},
            "audit": {"sets": {"soft": ["runs_a", "last"]}},
            "note": "D:\\xrays",
            "steps": 10,
            "name": "${data.seed}_run",
            "ok": ["torch.optim.Adam", "a/b", "torch.nn/Conv2d"],
        }
    )
    assert public_config(cfg) == {
        "data": {"seed": 3},
        "distill": {"resume": " auto "},
        "audit": {"sets": {"soft": ["<redacted>", "last"]}},
        "note": "<redacted>",
        "steps": 10,
        "name": "3_run",
        "ok": ["torch.optim.Adam", "<redacted>", "torch.nn/Conv2d"],  # a module name is no folder
    }
