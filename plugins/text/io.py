"""Loading text: a string is the text itself; a Path, or a str that names a .txt file (ends in
".txt" and has no whitespace), is read as UTF-8, one text per file. No torch here."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmbind.plugin.specs import InputError

EXTENSIONS = (".txt",)
EXPECTED = "a text (str) or a UTF-8 .txt file holding one text"


def _names_file(x: str) -> bool:
    # "open notes.txt" is a sentence; "data/notes.txt" is a file. Paths with spaces: pass a Path.
    return x.lower().endswith(".txt") and not any(ch.isspace() for ch in x)


def text_file(x: Any) -> Path | None:
    """The file a text input names: a Path, or a str that names a .txt file; else None."""
    if isinstance(x, os.PathLike):
        return Path(x)
    return Path(x) if isinstance(x, str) and _names_file(x) else None


def load_text(x: Any) -> str:
    """A str, bytes (UTF-8), Path or .txt filename -> the text, surrounding whitespace stripped."""
    if isinstance(x, bytes):
        try:
            x = x.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"bytes value: not UTF-8 ({error}); expected {EXPECTED}") from error
    if isinstance(x, str) and not _names_file(x):
        return _non_empty(x.strip(), "text value")
    if not isinstance(x, (str, os.PathLike)):
        raise InputError(f"value of type {type(x).__name__}: expected {EXPECTED}")
    path = Path(x)
    if path.suffix.lower() not in EXTENSIONS:
        raise InputError(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected {EXPECTED}")
    if not path.is_file():
        raise InputError(f"{path}: file not found; expected {EXPECTED}")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error}); expected {EXPECTED}") from error
    except OSError as error:
        raise InputError(f"{path}: unreadable ({error}); expected {EXPECTED}") from error
    return _non_empty(text, str(path))


def _non_empty(text: str, where: str) -> str:
    # An empty text would embed as the tokenizer's special tokens alone: a vector that means nothing.
    if not text:
        raise InputError(f"{where}: empty or whitespace-only text; expected {EXPECTED}")
    return text
