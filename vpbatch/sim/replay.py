"""The authors' recorded answers of the 33 paper models, served back verbatim by the simulator.

`ReplayBook` reads `lm_evaluation/outputs/final/<provider>/<model>_<version>_results.json[.xz]`
lazily, one model at a time, and maps (version, portrait_id, option_id) to what was recorded.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpbatch.benchmark import layout
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.benchmark.layout import resolve_data_dir
from vpbatch.errors import DataError
from vpbatch.log.importer import BadOutputFile, read_output_rows

__all__ = ["Recorded", "ReplayBook", "replay_root", "recorded_failure"]

_SUFFIXES = ("_results.json.xz", "_results.json")
# Longest first so "x_v1_reversed" is never read as model "x_v1" + version "reversed".
_VERSIONS_LONGEST = sorted(VERSIONS, key=len, reverse=True)
_UNPARSED = "Could not parse valid Likert response from: "
_HTTP_CODE = re.compile(r"^Error code: (\d{3})\b")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded answer: the text to send back, or the HTTP failure to replay instead."""

    text: str | None  # the model's answer (for a recorded parse failure: the unparsed text)
    reasoning: str | None = None
    status: int = 200  # != 200: replay as this HTTP error
    error: str | None = None  # the authors' error message (status != 200, or a filter)
    finish_reason: str = "stop"


def recorded_failure(message: str) -> Recorded:
    """Turn an authors' error message into what a provider would have sent back."""
    if message.startswith(_UNPARSED):
        # The model did answer, just not with a phrase: replay the answer itself.
        return Recorded(text=message[len(_UNPARSED) :], error=message)
    code = _HTTP_CODE.match(message)
    if code:
        return Recorded(text=None, status=int(code.group(1)), error=message)
    if "candidates` is empty" in message:
        # Gemini's safety block: an OpenAI-compatible server reports an empty filtered answer.
        return Recorded(text="", error=message, finish_reason="content_filter")
    if "Insufficient credits" in message:
        return Recorded(text=None, status=402, error=message)
    return Recorded(text=None, status=500, error=message)


def _split_name(name: str) -> tuple[str, str] | None:
    """`gpt-4o_v1_reversed_results.json.xz` -> ("gpt-4o", "v1_reversed")."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            for v in _VERSIONS_LONGEST:
                if stem.endswith("_" + v):
                    return stem[: -len(v) - 1], v
    return None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return read_output_rows(path)
    except (OSError, BadOutputFile) as exc:
        raise DataError(f"cannot read recorded outputs {path}: {exc}; re-fetch the data") from exc


def _to_recorded(row: dict[str, object]) -> Recorded:
    raw = row.get("raw_response")
    reasoning = row.get("reasoning")
    reasoning_s = reasoning if isinstance(reasoning, str) and reasoning else None
    if isinstance(raw, str):
        return Recorded(text=raw, reasoning=reasoning_s)
    error = row.get("error")
    if isinstance(error, str):
        return recorded_failure(error)
    return Recorded(text=None, status=500, error="no answer was recorded for this item")


class ReplayBook:
    """Recorded outputs under `root`, indexed by file model name; loads each model once."""

    __slots__ = ("root", "_files", "_cache", "_lock")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"no recorded outputs at {self.root}; point --replay-dir (or VPBATCH_DATA) at "
                "the data's lm_evaluation/outputs/final"
            )
        self._files: dict[str, dict[str, Path]] = {}
        for path in sorted(self.root.rglob("*_results.json*")):
            parts = _split_name(path.name)
            if parts is not None:
                self._files.setdefault(parts[0], {})[parts[1]] = path
        self._cache: dict[str, dict[tuple[str, int, int], Recorded]] = {}
        self._lock = threading.Lock()  # loads may run in worker threads of the server

    def models(self) -> list[str]:
        return sorted(self._files)

    def versions(self, model: str) -> list[str]:
        return sorted(self._files.get(model, {}))

    def load(self, model: str) -> dict[tuple[str, int, int], Recorded]:
        """(version, portrait_id, option_id) -> Recorded for every recorded answer of `model`."""
        with self._lock:
            got = self._cache.get(model)
            if got is not None:
                return got
            files = self._files.get(model)
            if files is None:
                raise DataError(
                    f"no recorded outputs for model {model!r} under {self.root}; "
                    f"known models: {', '.join(self.models()) or 'none'}"
                )
            table: dict[tuple[str, int, int], Recorded] = {}
            for version, path in files.items():
                for row in _read_rows(path):
                    key = (version, int(str(row["portrait_id"])), int(str(row["option_id"])))
                    table[key] = _to_recorded(row)
            self._cache[model] = table
            return table

    def get(self, model: str, version: str, portrait_id: int, option_id: int) -> Recorded | None:
        return self.load(model).get((version, portrait_id, option_id))


def replay_root(data: Path | None) -> Path:
    """Where the recorded outputs live inside a data dir."""
    if data is None:
        data = resolve_data_dir(None)
    return Path(data) / layout.OUTPUTS
