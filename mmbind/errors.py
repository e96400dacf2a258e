"""Errors in what the user gave: a file, a recipe, a store, a name. Their messages say what was
wrong and what was expected, so the CLI prints them as one clean line (the stack only with
``--traceback``); any other exception is a bug and keeps its traceback."""
from __future__ import annotations


class UserError(Exception):
    """Base of every error caused by the user's input rather than by mmbind."""


class InputError(UserError, ValueError):
    """A raw input that cannot be used; the message names the file (or value) and what was expected."""


class CheckpointError(UserError, ValueError):
    """A model, checkpoint or weights file that cannot be loaded; the message names the file."""


class RunFolderError(UserError):
    """A run folder that cannot be used as asked: it holds an earlier run, or another process trains in it."""


class TrainingError(UserError):
    """Training that cannot go on (a non-finite loss); the message names the step and what was kept."""


class ExportError(UserError, ValueError):
    """A tower that cannot be exported to the asked format; the message says why and what would."""
