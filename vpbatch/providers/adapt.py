"""Adapt once on the server's word: a 400 that refuses `max_tokens` or `temperature` by name
switches the model's request form for all its later requests.

A job's body (what its id digests) is never changed: the form is applied to it at send time,
so a resume finds the same ids, and the form itself is restored from the run dir
(`vpbatch.log.adapted`). Each switch happens at most once per model: a server that then
refuses the other form too gets its 400 classified as usual (permanent); one that refuses a
parameter it was no longer sent shows the switch was futile, and it is undone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from vpbatch.providers.reasoning import MAX_COMPLETION_TOKENS, MAX_TOKENS
from vpbatch.transport.records import FailureKind, ProviderError

__all__ = ["Form", "Adapter", "refused_params"]

_OTHER = {MAX_TOKENS: MAX_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS: MAX_TOKENS}
# How servers say a parameter is refused: OpenAI ("Unsupported parameter: 'max_tokens' is not
# supported with this model", "Unsupported value: 'temperature' does not support 0.0 ... Only
# the default (1) value is supported"), LiteLLM ("UnsupportedParamsError: ... does not support
# parameters: ['temperature']"), vLLM/others ("... is not supported", "unsupported ...").
_REFUSAL = re.compile(r"unsupported|not supported|does not support|only the default", re.I)
_PARAMS = (MAX_COMPLETION_TOKENS, MAX_TOKENS, "temperature")


@dataclass(slots=True)
class Form:
    """How a model's bodies are sent, as learnt from its server: JSON in the run dir."""

    token_field: str | None = None  # the output limit goes under this name (None: as built)
    drop_temperature: bool = False

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` in this form (a new dict when anything changes; the job's own is kept)."""
        other = _OTHER.get(self.token_field or "")
        if not (other in body or (self.drop_temperature and "temperature" in body)):
            return body
        out = dict(body)
        if other in out and self.token_field is not None:
            out[self.token_field] = out.pop(other)
        if self.drop_temperature:
            out.pop("temperature", None)
        return out

    def changes(self) -> tuple[str, ...]:
        """The switches in words, for the log record, `status` and the summary."""
        out = []
        if self.token_field is not None:
            out.append(f"{_OTHER[self.token_field]} sent as {self.token_field}")
        if self.drop_temperature:
            out.append("temperature not sent")
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {"token_field": self.token_field, "drop_temperature": self.drop_temperature}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Form:
        field_ = d.get("token_field")
        return cls(field_ if field_ in _OTHER else None, bool(d.get("drop_temperature")))


def refused_params(raw: bytes) -> set[str]:
    """The parameters a 400's body refuses by name (`unsupported_parameter` or its words)."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    err = payload.get("error") if isinstance(payload, dict) else None
    text = raw.decode("utf-8", "replace")
    if isinstance(err, dict):
        text = f"{err.get('message') or ''} {err.get('code') or ''} {err.get('type') or ''}"
        if isinstance(err.get("param"), str) and err["param"] in _PARAMS and str(
                err.get("code") or "").startswith("unsupported"):
            return {err["param"]}
    if not _REFUSAL.search(text):
        return set()
    # The first parameter named is the refused one ("Use 'max_completion_tokens' instead"
    # names the other afterwards).
    named = sorted((m.start(), p) for p in _PARAMS
                   if (m := re.search(rf"(?<![\w]){p}(?![\w])", text)))
    return {named[0][1]} if named else set()


class Adapter:
    """One model's request form: applied to each body sent, switched by a refusing 400."""

    __slots__ = ("form", "tried", "settling", "probe", "futile")

    def __init__(self, form: Form | None = None) -> None:
        self.form = form or Form()
        self.tried: set[str] = set()  # switches made (once each; restored ones count)
        # After a switch, the job that caused it is re-sent alone (the probe) and the others
        # wait for its outcome: a second switch then costs one request, not one per slot.
        self.settling: anyio.Event | None = None
        self.probe: object | None = None  # the probe job's body (the object, not its value)
        # The server refused a parameter no longer sent: the switch did not help, and a 400
        # from before it stands (no re-send in the new form).
        self.futile = False
        self.restore(self.form)

    async def wait_turn(self, body: object, patience: float) -> None:
        """Before sending `body`: wait (at most `patience` s) while another job tries a newly
        switched form."""
        with anyio.move_on_after(patience):
            while self.settling is not None and body is not self.probe:
                await self.settling.wait()

    def settled(self, body: object) -> None:
        """The probe's request ended without a further switch: the others may go."""
        if self.settling is not None and body is self.probe:
            self.settling.set()
            self.settling = self.probe = None

    def restore(self, form: Form) -> None:
        """Start in a form learnt by an earlier run (from the run dir)."""
        self.form = form
        if form.token_field is not None:
            self.tried.add("token_field")
        if form.drop_temperature:
            self.tried.add("temperature")

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.form.apply(body)

    def learn(self, sent: dict[str, Any], nominal: dict[str, Any], raw: bytes,
              label: str) -> ProviderError | None:
        """The ADAPTED error for a 400 on `sent` (the job's `nominal` body in the form then),
        or None when re-sending cannot help (the 400 is then classified as usual)."""
        named = refused_params(raw)
        refused = named & set(sent)
        if named - set(sent) and not self.futile:
            # It refuses what it was not sent: the form is not the cause. The switch is undone
            # (a temperature left out for nothing would change what is measured).
            self.futile = True
            self.form = Form()
            return None
        changed = False
        for param in refused:
            if param == "temperature" and "temperature" not in self.tried:
                self.tried.add("temperature")
                self.form.drop_temperature = changed = True
            elif param in _OTHER and "token_field" not in self.tried:
                self.tried.add("token_field")
                self.form.token_field, changed = _OTHER[param], True
        if changed:
            if self.settling is None:
                self.settling = anyio.Event()
            self.probe = nominal
            why = ", ".join(self.form.changes())
            return ProviderError(
                FailureKind.ADAPTED, f"{label} HTTP 400 refused {', '.join(sorted(refused))}: "
                f"from now on {why}", status=400, adapted=self.form.to_json())
        if refused and not self.futile and self.apply(nominal) != sent:
            # Another request switched the form while this one was in flight: re-send it
            # (the caller first waits for the probe: if the switch proves futile, it is not).
            return ProviderError(FailureKind.ADAPTED, f"{label} HTTP 400 refused "
                                 f"{', '.join(sorted(refused))}: re-sent in the new form",
                                 status=400)
        return None
