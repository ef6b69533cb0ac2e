"""Request and response bodies, and the translation of validation errors.

``Applicant`` is generated from the contract (``schema.FIELDS``): every range,
integer rule, category list and nullability is a declared pydantic constraint,
so the OpenAPI schema at ``/docs`` and the validation are the contract itself.
Pydantic's errors are turned into ``schema.Violation`` (row, field, value, rule)
with the contract's own wording.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from creditops import schema
from creditops.serving.credit_time import APPLICATION_FIELD, ISO_RULE, Moment

EXAMPLE_APPLICANT: dict[str, Any] = schema.EXAMPLE_APPLICANT


def _field_annotation(spec: schema.Field) -> tuple[Any, Any]:
    if isinstance(spec, schema.CategoricalField):
        kind: Any = Literal[spec.categories]  # type: ignore[valid-type]
        info = Field(description=spec.description)
    else:
        bounds: dict[str, Any] = {"le": spec.maximum}
        bounds["gt" if spec.exclusive_minimum else "ge"] = spec.minimum
        if spec.integer:
            bounds["multiple_of"] = 1
        # strict: a number must be a JSON number (no "30" strings, no booleans)
        kind = Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]
        info = Field(
            description=f"{spec.description} ({'whole number, ' if spec.integer else ''}"
            f"{'>' if spec.exclusive_minimum else '>='} {spec.minimum:g}, "
            f"<= {spec.maximum:g})"
        )
    if spec.nullable:
        info = Field(None, description=f"{info.description}; null or absent when unknown")
        return kind | None, info
    return kind, info


Applicant: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Applicant",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [EXAMPLE_APPLICANT]},
    ),
    **{name: _field_annotation(spec) for name, spec in schema.FIELDS.items()},
    Status=(
        Literal["good", "bad"] | None,
        Field(None, description="ignored if sent (report outcomes to POST /feedback)"),
    ),
    application_at=(
        Moment | None,
        Field(
            None,
            description="when the application was made (ISO-8601 date or datetime, UTC "
            "unless an offset is given); not in the future, not before [serve] "
            "earliest_application_date; absent = now",
        ),
    ),
)
Applicant.__doc__ = "One credit applicant, in natural values, as the contract defines it."

APPLICANTS = TypeAdapter(list[Applicant])  # type: ignore[valid-type]
_ONE_APPLICANT = TypeAdapter(Applicant)


class DataframeRecords(BaseModel):
    """MLflow's ``dataframe_records`` body (the fast path of ``POST /invocations``)."""

    model_config = ConfigDict(extra="forbid")
    dataframe_records: list[Applicant]  # type: ignore[valid-type]


def fast_validate(body: bytes, *, mlflow: bool) -> list[dict[str, Any]] | None:
    """Rows of a well-formed body, validated straight from the JSON bytes; else ``None``.

    ``None`` means "take the slow path": it parses the body on its own and
    names every broken rule.
    """
    try:
        if mlflow:
            if b'"dataframe_records"' not in body[:64]:
                return None
            records = DataframeRecords.model_validate_json(body).dataframe_records
            return [m.__dict__ for m in records]
        start = body.lstrip()[:1]
        if start == b"[":
            return [m.__dict__ for m in APPLICANTS.validate_json(body)]
        if start == b"{":
            return [_ONE_APPLICANT.validate_json(body).__dict__]
    except ValidationError:
        return None
    return None


def validate_applicants(records: list[Any]) -> tuple[list[dict[str, Any]], list[schema.Violation]]:
    """Validate records against the contract.

    Returns:
        The rows as dicts of contract features (nullable ones may be ``None``),
        and every violation (row numbers are 1-based). Rows are returned only
        when there is no violation at all.
    """
    try:
        models = APPLICANTS.validate_python(records)
    except ValidationError as exc:
        return [], violations_from(exc)
    return [m.__dict__ for m in models], []


def violations_from(exc: ValidationError) -> list[schema.Violation]:
    """Every pydantic error as a contract violation naming row, field, value and rule."""
    found: dict[tuple[int, str], schema.Violation] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        row = int(loc[0]) + 1 if loc and isinstance(loc[0], int) else 1
        name = str(loc[1]) if len(loc) > 1 else "(row)"
        value = error.get("input")
        if error["type"] == "missing":
            value = None
        violation = schema.Violation(row, name, _plain(value), _rule(name, error["type"], value))
        found.setdefault((row, name), violation)
    order = {name: i for i, name in enumerate(schema.FEATURES)}
    return sorted(found.values(), key=lambda v: (v.row, order.get(v.field, len(order)), v.field))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list):
        return "(object)" if isinstance(value, dict) else "(list)"
    return value


def _rule(name: str, kind: str, value: Any) -> str:
    spec = schema.FIELDS.get(name)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be an object with the contract's fields"
    if spec is None:
        if name == schema.TARGET:
            return "is not one of good, bad"
        if name == APPLICATION_FIELD:
            return ISO_RULE
        return f"is not a contract field (the fields are: {', '.join(schema.FEATURES)})"
    if kind == "missing" or value is None:
        return "is required"
    if isinstance(spec, schema.CategoricalField):
        return f"is not one of {', '.join(spec.categories)}"
    if kind == "finite_number":
        return "is not finite"
    if kind == "greater_than":
        return f"must be greater than {spec.minimum:g}"
    if kind == "greater_than_equal":
        return f"is below the minimum {spec.minimum:g}"
    if kind == "less_than_equal":
        return f"is above the maximum {spec.maximum:g}"
    if kind == "multiple_of":
        return "must be a whole number"
    return "is not a number"


# --- responses --------------------------------------------------------------------


class Reason(BaseModel):
    """One feature pushing the applicant toward decline."""

    feature: str = Field(description="contract field or derived ratio")
    value: float | str | None = Field(description="the applicant's value of it")
    contribution: float = Field(
        description="its push toward decline, in the unit given by GET /model"
    )


class Prediction(BaseModel):
    """The score of one applicant."""

    request_id: str = Field(description="quote it to POST /feedback")
    probability: float = Field(description="probability of default (bad)")
    decision: Literal["approve", "decline"]
    explored: bool = Field(
        False, description="declined by the model, granted anyway ([serve] explore_share)"
    )
    reasons: list[Reason] = Field(
        description="top features pushing toward decline, strongest first"
    )
    model_name: str
    model_version: int


class PredictResponse(BaseModel):
    """Scores of every applicant of one request, in order."""

    batch_id: str
    predictions: list[Prediction]


class InvocationsResponse(BaseModel):
    """MLflow scoring-server answer: 1 (decline: predicted bad) or 0 (approve) per row."""

    predictions: list[int]


class FeedbackRequest(BaseModel):
    """The observed outcome of one scored applicant."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"request_id": "0" * 32, "outcome": "bad"}]},
    )

    request_id: str = Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")
    outcome: Literal["good", "bad"]
    observed_at: Moment | None = Field(
        None,
        description="when the outcome was observed (ISO-8601; absent = now): not before "
        "the application, not in the future",
    )


class FeedbackResponse(BaseModel):
    request_id: str
    outcome: Literal["good", "bad"]
    status: Literal["recorded", "unchanged"]


class ViolationBody(BaseModel):
    row: int
    field: str
    value: Any
    rule: str


class ErrorResponse(BaseModel):
    """Every refusal: a one-line summary and, for bad rows, each broken rule."""

    detail: str
    errors: list[ViolationBody] = Field(default_factory=list)


class MlflowErrorResponse(BaseModel):
    """A refusal of ``POST /invocations``, as ``mlflow models serve`` answers (400 for bad rows)."""

    error_code: str = Field(description="BAD_REQUEST, or TEMPORARILY_UNAVAILABLE (503)")
    message: str = Field(description="one line: the first broken rule (row, field, value, rule)")
    errors: list[ViolationBody] = Field(default_factory=list)


class ReloadResponse(BaseModel):
    changed: bool
    model_name: str | None
    model_version: int | None
    detail: str
