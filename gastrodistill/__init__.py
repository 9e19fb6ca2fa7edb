"""gastrodistill: soft-label anonymous dataset distillation for X-ray patches.

Stages (one sub-package each): ``data`` (whole images -> patch store -> DataModules),
``models`` (the networks), ``distillation`` (bi-level learning of the distilled set),
``evaluation`` (fresh networks, baselines, patient-level diagnosis), ``anonymity``
(audit), ``sharing`` (the safetensors artifact), ``cli`` (Hydra entry points).
"""

import os

# Offline by default: albumentations would otherwise check for updates at import, and W&B
# must never reach the network unless the user asks for it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A log file gets a progress redraw every few seconds, not ten a second (tqdm reads its defaults when it is
# imported, so before torch and Lightning import it: gastrodistill/utils/progress.py).
from gastrodistill.utils.progress import quiet_progress_when_redirected as _quiet_progress  # noqa: E402

_quiet_progress()

__version__ = "0.1.0"

# The configs' own resolver, ${if_native_bf16:DEVICE,A,B} (conf/experiment/cpu.yaml, audit.receive): any
# code that imports gastrodistill can resolve a config, including one saved unresolved and loaded with
# OmegaConf.load (e.g. by a rank of a distributed run), not only code that composes the config tree.
from gastrodistill.utils.bf16_support import register_resolver as _register_resolver  # noqa: E402

_register_resolver()
