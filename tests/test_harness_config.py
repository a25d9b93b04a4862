"""The eval config documents itself: every field, in every section, says what it is where it is declared
(the README promises it, and `harness eval` users edit these files)."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from harness.config import EvalConfig


def _undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            missing.append(prefix + name)
        for kind in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                missing += _undocumented(kind, f"{prefix}{name}.")
    return missing


def test_every_field_of_the_eval_config_is_documented():
    assert _undocumented(EvalConfig) == []
