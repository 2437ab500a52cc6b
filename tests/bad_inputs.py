"""The bad inputs the tests try, described as the rows of the tables in docs/threat-model.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fsw.errors import KeyFileError, ModelFileError
from fsw.io import load_model
from fsw.key import load_key

REFUSED = "refused at load"


@dataclass(frozen=True)
class Tried:
    """One bad input: what it is, what fsw should do with it, and what the test checks it did."""

    input: str
    expected: str
    observed: str


def refusal(error: type[Exception], phrases: tuple[str, ...], extra: str = "") -> str:
    """The observed column of a refused input: the error, naming the file, saying one of `phrases`."""
    said = " or ".join(f'"{phrase}"' for phrase in phrases)
    return f"`{error.__name__}` naming the file, saying {said}{extra}"


@dataclass(frozen=True)
class BadFile:
    """A model or key file that the loader must refuse, with one of `phrases` in its message."""

    input: str
    make: Callable[[Path], Path]  # writes the file into a folder and returns its path
    phrases: tuple[str, ...]
    kind: str = "model"  # or "key": which loader reads it
    expected: str = REFUSED

    @property
    def error(self) -> type[Exception]:
        return ModelFileError if self.kind == "model" else KeyFileError

    def load(self, path: Path):
        return (load_model if self.kind == "model" else load_key)(path)

    def tried(self, extra: str = "") -> Tried:
        return Tried(self.input, self.expected, refusal(self.error, self.phrases, extra))


def assert_names_file_and_fault(message: str, path: Path, phrases: tuple[str, ...]) -> None:
    assert str(path) in message, f"the message does not name the file: {message}"
    assert any(phrase in message for phrase in phrases), message
