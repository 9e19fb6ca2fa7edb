"""``utils.images.save_figure``, the one writer of the evaluation's and the audit's charts: the file holds the
bytes ``savefig`` writes with the caller's options, the figure is closed, and a failed write leaves the
earlier file and no temporary file."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gastrodistill.anonymity import figures  # noqa: E402
from gastrodistill.evaluation import plots  # noqa: E402
from gastrodistill.utils.images import save_figure  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [2, 0, 1], label="x")
    ax.set_title("t")
    ax.legend()
    return fig


@pytest.mark.parametrize("module", [plots, figures], ids=["evaluation", "audit"])
def test_the_file_holds_the_bytes_savefig_writes_with_the_callers_options_and_the_figure_is_closed(
    tmp_path, module
):
    expected = io.BytesIO()
    _figure().savefig(expected, format="png", **module._PNG_OPTIONS)
    plt.close("all")
    fig = _figure()
    out = save_figure(fig, tmp_path / "chart.png", **module._PNG_OPTIONS)
    assert out == tmp_path / "chart.png"
    assert out.read_bytes() == expected.getvalue()
    assert not plt.fignum_exists(fig.number)
    assert os.listdir(tmp_path) == ["chart.png"]


def test_the_audit_charts_have_no_software_line_and_the_evaluation_charts_tight_bounds(tmp_path):
    """The options each module kept when the two savers became one (the PNG bytes of both are unchanged)."""
    assert plots._PNG_OPTIONS == {"dpi": 110, "bbox_inches": "tight"}
    assert figures._PNG_OPTIONS == {"dpi": 110, "metadata": {"Software": None}}
    save_figure(_figure(), tmp_path / "audit.png", **figures._PNG_OPTIONS)
    save_figure(_figure(), tmp_path / "eval.png", **plots._PNG_OPTIONS)
    assert b"Software" not in (tmp_path / "audit.png").read_bytes()
    assert b"Software" in (tmp_path / "eval.png").read_bytes()


def test_a_failed_write_keeps_the_earlier_file_leaves_no_temporary_and_closes_the_figure(tmp_path):
    target = tmp_path / "chart.png"
    target.write_bytes(b"earlier")
    fig = _figure()

    def half_written(path, **options):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    fig.savefig = half_written
    with pytest.raises(OSError, match="No space left"):
        save_figure(fig, target, dpi=110)
    assert target.read_bytes() == b"earlier"
    assert os.listdir(tmp_path) == ["chart.png"]
    assert not plt.fignum_exists(fig.number)
