"""benchmarks/threshold_study.py: the external pool and the all-data networks are refused where their
figures would mean nothing, with what to do; a run's draw of fitting and test patients, and the ratios
over those draws where the answer is known without the script (identical rows, order- and
midpoint-preserving maps of the scores)."""

from __future__ import annotations

import pytest
from _benchmarks import load_benchmark


def _study():
    return load_benchmark("threshold_study")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--full", "2"], "--full needs --pool external"),
        (["--pool", "external"], "--pool external and --pool-overrides go together"),
        (["--pool-overrides", "synthetic.seed=5"], "--pool external and --pool-overrides go together"),
        (["--sizes", "2"], "every --sizes >= 4"),
        (["--sizes", "7"], "each size must be even"),
    ],
)
def test_arguments_are_refused_with_what_to_do(capsys, tmp_path, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        _study().main(["--set", str(tmp_path), *argv, "--", "experiment=cpu"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_pool_that_names_the_main_data_is_refused(capsys, tmp_path, monkeypatch) -> None:
    """The pool must be another collection: the main data's patients trained the all-data networks."""
    monkeypatch.setenv("GASTRODISTILL_ROOT", str(tmp_path))
    argv = ["--set", str(tmp_path), "--pool", "external", "--pool-overrides", "synthetic.seed=5"]
    with pytest.raises(SystemExit) as info:
        _study().main([*argv, "--", "experiment=cpu"])
    assert info.value.code == 2
    assert "name the main data" in capsys.readouterr().err


def _pool(n: int = 40, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 0
    s = np.clip(np.where(y, 0.6, 0.3) + rng.normal(0, 0.15, n), 0, 1)
    return s, y


def test_a_run_draw_of_the_same_networks_gives_a_ratio_of_one() -> None:
    import numpy as np

    s, y = _pool()
    rows = [("all", [(s, y)], {}), ("same", [(s.copy(), y)], {})]
    (r,) = _study().run_draws(rows, 10, (5, 7), 50, "binormal", 0)
    assert r.shape == (50,)
    np.testing.assert_array_equal(r, 1.0)


def test_rows_that_order_the_patients_alike_score_alike_by_the_empirical_rule() -> None:
    """An affine map of the scores keeps their order and the midpoints the empirical rule places its
    threshold at, so every test decision and every draw's ratio stay 1; squaring keeps the order but
    not the midpoints, and some draws' ratios move: the rows' scores, not their names, reach the ratio."""
    import numpy as np

    s, y = _pool()
    affine = [("all", [(s, y)], {}), ("affine", [(0.5 * s + 0.2, y)], {})]
    (r,) = _study().run_draws(affine, 10, (5, 7), 50, "empirical", 0)
    np.testing.assert_allclose(r, 1.0)
    squared = [("all", [(s, y)], {}), ("squared", [(s**2, y)], {})]
    (q,) = _study().run_draws(squared, 10, (5, 7), 50, "empirical", 0)
    assert np.any(q != 1.0)


def test_a_run_draw_takes_disjoint_fitting_and_test_patients_of_each_diagnosis() -> None:
    import numpy as np

    y = np.arange(30) % 3 == 0  # 10 gastritis, 20 other
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        fit, tst = _study().draw_run(rng, y, 8, (5, 9))
        assert len(set(fit)) == 8 and int(y[fit].sum()) == 4  # half per diagnosis
        assert len(set(tst)) == 14 and int(y[tst].sum()) == 5
        assert not set(fit) & set(tst)
        seen.update(tst.tolist())
    assert seen == set(range(30))  # every patient can be a test patient
    with pytest.raises(ValueError):
        _study().draw_run(rng, y, 8, (7, 9))  # 4 + 7 gastritis > 10
