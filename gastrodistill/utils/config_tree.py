"""Where the Hydra config tree lives, for the commands and for the stages that read a preset's defaults."""

from __future__ import annotations

from pathlib import Path


def _conf_dir() -> str:
    """The Hydra config tree: ``conf/`` of a source checkout, else the copy shipped in the package.

    A regular (non-editable) install holds the tree as package data in ``gastrodistill/conf``
    (``pyproject.toml`` maps ``conf/`` there), so commands find their configs wherever they run.
    Raises ``FileNotFoundError`` (saying to reinstall) when neither holds ``config.yaml``.
    """
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "conf", package / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"no Hydra config tree next to {package} (conf/config.yaml) nor inside it (gastrodistill/conf); "
        "reinstall gastrodistill"
    )


#: The Hydra config tree (absolute path, used as ``config_path`` of every command).
CONF_DIR = _conf_dir()
