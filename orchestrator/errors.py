"""The orchestrator's exception hierarchy; the CLI maps each class to an exit status.

Input problems (a bad spec, a broken dataset, unreachable storage) exit with 2 and one line
naming the place; failures while running exit with 1.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(OrchestratorError):
    """The user's input is wrong; nothing was launched."""

    exit_code = 2


class SpecError(InputError):
    """A study spec is malformed: ``str(err)`` is ``file:line: key.path: message``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        self.file, self.line, self.key, self.detail = file, line, key, message
        where = ":".join(str(part) for part in (file, line) if part is not None)
        text = f"{key}: {message}" if key else message
        super().__init__(f"{where}: {text}" if where else text)


class DataError(InputError):
    """A dataset is missing or broken."""


class StoreError(InputError):
    """The result store or tracking server cannot be reached or written."""


class StudyNotFoundError(InputError):
    """A command named a study that has no results."""


class StudyBusyError(InputError):
    """Another live driver is running the study (its lock is held)."""


class StudyInterrupted(OrchestratorError):
    """The user interrupted a running study (Ctrl-C); it can be resumed."""

    exit_code = 130


class StudyTerminated(StudyInterrupted):
    """The study was stopped by SIGTERM (``kill``, a Kubernetes pod eviction); it can be resumed."""

    exit_code = 143
