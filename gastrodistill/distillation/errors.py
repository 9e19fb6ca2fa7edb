"""The distillation's configuration error: a ``distill.*`` value it cannot run with.

A ``ValueError`` (callers that caught that before still do); the command line prints its message alone
(``error: distill.precision must be ...``) and exits with status 1, as for the other project errors
(``gastrodistill.cli.errors.PROJECT_ERRORS``).
"""

from __future__ import annotations


class DistillConfigError(ValueError):
    """A ``distill.*`` setting the distiller refuses; the message names the key and the values allowed."""
