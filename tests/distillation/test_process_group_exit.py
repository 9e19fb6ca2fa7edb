"""The process group is destroyed when a rank's process exits (gloo threads joined before interpreter
shutdown; see ``gastrodistill.utils.distributed.destroy_process_group_at_exit``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# atexit runs handlers last-registered-first: the probe registered before the group exists runs after
# every handler registered later, so it sees what they left.
SCRIPT = textwrap.dedent(
    """
    import atexit, socket
    import torch.distributed as dist
    from gastrodistill.utils.distributed import destroy_process_group_at_exit

    atexit.register(lambda: print("initialized at exit:", dist.is_initialized(), flush=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    if REGISTER:
        destroy_process_group_at_exit()
        destroy_process_group_at_exit()  # twice: still one handler, no error at exit
    """
)


@pytest.mark.parametrize("register", [True, False])
def test_process_group_destroyed_at_exit_only_when_registered(register):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("REGISTER", str(register))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"initialized at exit: {not register}" in run.stdout
