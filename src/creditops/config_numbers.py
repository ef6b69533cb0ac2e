"""A truth value is not a number: the rule every config section applies before its own.

pydantic reads ``true`` as 1 for an ``int`` field and as 1.0 for a ``float``
one, so ``n_jobs = true`` or ``min_auc = true`` would pass. A config file or
environment variable that gives ``true``/``false`` where a number belongs is
refused, naming the key and the value, also inside a table
(``trials = { random_forest = true }``) or a list.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic_core import PydanticCustomError


def refuse_truth_values(annotation: Any, value: Any) -> Any:
    """``value`` unchanged, unless it holds a truth value where ``annotation`` wants a number.

    Raises:
        PydanticCustomError: ``truth_value_as_number``, naming the entry of a
            table or list that holds it.
    """
    found = _truth_at(annotation, value)
    if found is None:
        return value
    where, truth = found
    entry = f"{where.removeprefix('.')} = {str(truth).lower()}: " if where else ""
    raise PydanticCustomError(
        "truth_value_as_number", entry + "a truth value (true/false) is not a number here"
    )


def _truth_at(annotation: Any, value: Any) -> tuple[str, bool] | None:
    """Where ``value`` holds a truth value in a number's place ("": itself) and that value."""
    options = _members(annotation)
    if isinstance(value, bool):
        wanted = options & {int, float} and not options & {bool, Any, object}
        return ("", value) if wanted else None
    for option in options:
        origin, args = get_origin(option), get_args(option)
        entries: list[tuple[str, Any, Any]] = []
        if isinstance(value, dict) and origin is dict and len(args) == 2:
            entries = [(f".{key}", args[1], item) for key, item in value.items()]
        elif isinstance(value, list | tuple) and origin in (list, tuple) and args:
            entries = [(f"[{index}]", args[0], item) for index, item in enumerate(value)]
        for step, inner, item in entries:
            found = _truth_at(inner, item)
            if found is not None:
                return step + found[0], found[1]
    return None


def _members(annotation: Any) -> set[Any]:
    """The types an annotation admits, through ``Optional``, unions and ``Annotated``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or isinstance(annotation, types.UnionType):
        return set().union(*(_members(arg) for arg in get_args(annotation)))
    return {annotation}
