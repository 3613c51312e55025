"""The error every dataset problem raises.

It lives apart from the readers so that each of them, and the split logic,
can raise it without importing one another. The CLI prints its message as one
line and exits with code 2, like a config error; so every message names the
``data.*`` key to change and what is allowed.
"""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(RuntimeError):
    """The dataset is missing, corrupt or does not fit the config; the message says how to fix it."""
