"""The recipe checker against a hand-made results table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gastrodistill.cli.check_experiment import RecipeError, evaluate, load_recipe, main

TABLE = pd.DataFrame(
    {
        "method": ["soft", "soft", "hard", "full", "random"],
        "schedule": ["replay", "replay", "replay", "real", "standard"],
        "architecture": ["convnet", "lenet", "convnet", "convnet", "convnet"],
        "cross_architecture": [False, True, False, False, False],
        "patient_hm_mean": [0.80, 0.50, 0.70, 0.85, 0.60],
    }
)

RECIPE = """
name: t
overrides: [experiment=cpu]
results: eval/results.csv
expect:
  - what: ratio
    value: {method: soft, schedule: replay}
    relative_to: {method: full, schedule: real}
    range: [0.9, 1.2]
  - what: soft minus hard
    value: {method: soft, schedule: replay}
    minus: {method: hard, schedule: replay}
    range: [0.0, 1.0]
  - what: cross-arch soft
    value: {method: soft, schedule: replay, architecture: lenet}
    range: [0.6, 1.0]
  - what: missing row
    value: {method: mean, schedule: standard}
    range: [0.0, 1.0]
"""


def test_checks_hand_computed(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    checks = evaluate(load_recipe(p), TABLE)
    assert checks[0].value == pytest.approx(0.80 / 0.85) and checks[0].ok  # 0.941, primary architecture
    assert checks[1].value == pytest.approx(0.10) and checks[1].ok
    assert checks[2].value == pytest.approx(0.50) and not checks[2].ok
    assert math.isnan(checks[3].value) and not checks[3].ok
    csv = tmp_path / "results.csv"
    TABLE.to_csv(csv, index=False)
    assert main([str(p), "--results", str(csv)]) == 1


def test_malformed_recipe_is_named(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: t\noverrides: []\nresults: x\nexpect:\n  - value: {method: soft}\n")
    with pytest.raises(RecipeError, match=r"expect\[0\] needs 'value' and a two-number 'range'"):
        load_recipe(p)
    assert main([str(p), "--results", str(tmp_path / "none.csv")]) == 2
