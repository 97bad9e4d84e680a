"""Errors an operator can act on: the CLI prints their message as one line and exits non-zero, no traceback.

Raise `OperatorError` at the composition root (llmpulse/runtime.py, commands) when a component's own exception
means a misconfiguration or an unreachable dependency; say what was wrong, where, and what to do.
"""

from __future__ import annotations


class OperatorError(Exception):
    """One actionable line for the operator; `exit_code` is what the process exits with."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
