"""Running a Hydra command's ``main`` in-process the way a shell would, for the command-line error tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra


def run_main(main: Callable[[], object], argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run ``main`` with ``sys.argv = argv``; it must exit (SystemExit).

    Returns (exit status, stdout + stderr)."""
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as info:
        main()
    GlobalHydra.instance().clear()
    captured = capsys.readouterr()
    return info.value.code, captured.out + captured.err


def assert_nothing_written(root: Path) -> None:
    """No file and no folder under ``root`` (``root`` itself may stay, empty)."""
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    assert left == [], left


def reproduce_refusal(cfg, root: Path) -> BaseException:
    """Run ``gastrodistill-reproduce``'s pipeline on ``cfg``: it must stop before writing anything (no run
    folder, no image under ``root``). Returns the exception, for the caller to check its type and text."""
    from gastrodistill.cli.reproduce import Pipeline

    pipe = Pipeline(cfg)
    with pytest.raises(Exception) as info:
        pipe.run()
    assert not pipe.out.exists()
    assert not any(root.rglob("*.png")) and not any(root.rglob("*.npy"))
    return info.value
