"""The served-request event: its fields, declared once in FIELDS, and the two ways a batch of events is
validated. No Django.

A row of FIELDS names a field, its type and bounds as msgspec reads them, the message a client gets when a
value does not fit, and what stands in for the field when it is absent or null. From the rows come:

- DecodedEvent, the msgspec struct of the fast path (validate_body): msgspec parses and type-checks a whole
  raw body in C. The fast path only ever accepts; whenever it is not sure, it returns None and the caller
  takes the strict path.
- The strict path (validate_batch): every value of every event checked against its row's type and bounds
  (or the row's own check), every problem listed with the event's index, the field and the row's message,
  so a client can fix the batch and send it again.
- CleanEvent, what both paths return, built by one constructor (clean_event) and held to the rules
  between fields by one function (event_problems); both paths call the two.

Adding a field is one row in FIELDS (and a column where services/ingestion.py stores events).
tests/monitoring/test_events.py checks that both paths follow the declaration, and
tests/monitoring/test_ingest.py that they agree on random events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import msgspec
import msgspec.structs
from msgspec import UNSET, Meta, UnsetType

MAX_EVENTS = 10_000
MAX_ERRORS = 100
FUTURE_SLACK = timedelta(hours=1)
REQUIRED = msgspec.NODEFAULT  # the `default` of a field that must be given
MODEL_OR_PROMPT = "give either model or prompt (a name)"


class BatchInvalid(ValueError):
    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} problem(s) in the batch")
        self.errors = errors


class Field(NamedTuple):
    """One field of an event.

    `type` and `constraint` (a msgspec.Meta of bounds) are checked by msgspec on the raw body in the fast
    path, and by the check derived from them (strict_check) in the strict path; a float is always finite.
    `message` is the strict path's answer when a value does not fit. `default` stands in when the field is
    absent or null; REQUIRED: it must be given. `check`, for a field the strict path must check in its own
    way: value -> clean value, raising Refused.
    """

    name: str
    type: Any
    constraint: Meta | None
    message: str
    default: Any = REQUIRED
    check: Callable[[Any], Any] | None = None


class Refused(ValueError):
    """A value the strict path refuses: the row's field and message unless this names others."""

    def __init__(self, message: str = "", field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


def strict_check(tp: Any, constraint: Meta | None = None) -> Callable[[Any], Any]:
    """The strict path's check of a given (non-null) value: msgspec's rules for a JSON value, in Python.

    A bool is neither a whole number nor a float; a whole number is a float too (and comes back as one); a
    float is finite (JSON has no NaN or infinity, and msgspec refuses a number beyond the largest float);
    bounds are inclusive. Only the kinds and bounds FIELDS uses: anything else is a TypeError when the
    module loads, so a new kind of field gets its check here before it can be declared.
    """
    meta = constraint or Meta()
    if any(getattr(meta, name) is not None for name in ("gt", "lt", "multiple_of", "pattern", "tz")):
        raise TypeError(f"no strict check for {meta!r}")
    low = -math.inf if meta.ge is None else meta.ge
    high = math.inf if meta.le is None else meta.le
    shortest, longest = meta.min_length or 0, math.inf if meta.max_length is None else meta.max_length
    if tp is str:

        def check(value):
            if isinstance(value, str) and shortest <= len(value) <= longest:
                return value
            raise Refused

    elif tp is int:

        def check(value):
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                return value
            raise Refused

    elif tp is float:

        def check(value):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # a whole number beyond the largest float
                    raise Refused from None
                if number - number == 0.0 and low <= number <= high:  # x - x is NaN for +-inf and NaN
                    return number
            raise Refused

    elif tp is bool:

        def check(value):
            if value is True or value is False:
                return value
            raise Refused

    elif get_origin(tp) is Literal and all(type(v) is int for v in get_args(tp)):
        allowed = frozenset(get_args(tp))

        def check(value):
            if type(value) is int and value in allowed:
                return value
            raise Refused

    elif get_origin(tp) in (Union, UnionType) and constraint is None:
        plain, floats = _scalars(tp)

        def check(value):
            kind = type(value)
            if kind in plain or (floats and kind is float and value - value == 0.0):
                return value
            raise Refused

    elif get_origin(tp) is dict and get_args(tp)[0] is str and constraint is None:
        plain, floats = _scalars(get_args(tp)[1])

        def check(value):
            if not isinstance(value, dict):
                raise Refused
            for key, item in value.items():  # the hot loop of the strict path: 20 features x 10,000 events
                kind = type(item)
                if not (kind in plain or (floats and kind is float and item - item == 0.0)):
                    raise Refused(field=key)
            return value

    else:
        raise TypeError(f"no strict check for {tp!r}")
    return check


def _scalars(tp: Any) -> tuple[frozenset, bool]:
    """A union of JSON scalars, int among them, as the types taken exactly as they are (True is an int to
    isinstance, not to JSON) and whether a float is taken too (then a finite one: x - x is 0 except for
    NaN and +-inf)."""
    members = set(get_args(tp)) if get_origin(tp) in (Union, UnionType) else set()
    if not {int} <= members <= {int, float, str, bool, NoneType}:
        raise TypeError(f"no strict check for {tp!r}")
    return frozenset(members - {float}), float in members


def _timestamp(value) -> datetime:
    """Any ISO 8601 date and time Python reads; msgspec reads only RFC 3339, so the fast path falls back
    for the others (a space for the T, a date alone)."""
    if not isinstance(value, str):
        raise Refused
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Refused("not an ISO 8601 date and time") from None


FeatureValue = int | float | str | None
_feature_values = strict_check(dict[str, FeatureValue])


def _features(value) -> dict:
    """The features as sent, or Refused naming the first bad one ("features.<name>")."""
    try:
        return _feature_values(value)
    except Refused as refused:
        if refused.field is None:  # not an object
            raise
        raise Refused("must be a finite number, a string or null (NaN and Infinity are invalid)", field=f"features.{refused.field}") from None


NON_NEGATIVE = Meta(ge=0)
# Token counts are stored in 32-bit columns: a larger count is refused here, never by the database's insert.
TOKEN_COUNT = Meta(ge=0, le=2**31 - 1)
TOKENS = "must be a whole number from 0 to 2147483647"
OPTIONAL_NUMBER = "must be a finite number >= 0"
TRUE_OR_FALSE = "must be true or false"
SCALAR = "must be a finite number, a string or a boolean"

# The one declaration of an event. The strict path checks (and reports) the fields in this order; the rules
# between fields are event_problems'.
FIELDS: tuple[Field, ...] = (
    Field("event_id", str, Meta(min_length=1, max_length=100), "required: a string of 1 to 100 characters"),
    Field("model", str, None, MODEL_OR_PROMPT, default=None),
    Field("prompt", str, None, MODEL_OR_PROMPT, default=None),
    Field("version", int, Meta(ge=1), "required: a positive whole number"),
    Field("timestamp", datetime, None, "must be an ISO 8601 string", check=_timestamp),
    Field("latency_ms", float, NON_NEGATIVE, "required: a finite number >= 0"),
    Field("error", bool, None, TRUE_OR_FALSE, default=False),
    Field("unit_id", str, Meta(max_length=200), "must be a string of at most 200 characters", default=""),
    # Read-only: the one empty mapping stands in for the features of every event without any.
    Field("features", dict[str, FeatureValue], None, "must be an object of name to number or string",
          default=MappingProxyType({}), check=_features),
    Field("prediction", int | float | str | bool, None, SCALAR, default=None),
    Field("label", int | float | str | bool, None, SCALAR, default=None),
    # Of the input tokens, those read from a prompt cache; of the output tokens, those spent reasoning
    # (OpenAI's usage counts them inside prompt_tokens and completion_tokens the same way).
    Field("input_tokens", int, TOKEN_COUNT, TOKENS, default=None),
    Field("output_tokens", int, TOKEN_COUNT, TOKENS, default=None),
    Field("cached_tokens", int, TOKEN_COUNT, TOKENS, default=None),
    Field("reasoning_tokens", int, TOKEN_COUNT, TOKENS, default=None),
    # Of the input tokens, those written to a prompt cache (Anthropic's cache_creation_input_tokens, counted here inside input_tokens).
    Field("cache_creation_tokens", int, TOKEN_COUNT, TOKENS, default=None),
    Field("cost_usd", float, NON_NEGATIVE, OPTIONAL_NUMBER, default=None),
    Field("ttft_ms", float, NON_NEGATIVE, OPTIONAL_NUMBER, default=None),
    Field("judge_score", float, NON_NEGATIVE, OPTIONAL_NUMBER, default=None),
    Field("faithfulness", float, NON_NEGATIVE, OPTIONAL_NUMBER, default=None),
    Field("llm_model", str, Meta(max_length=200), "must be a string of at most 200 characters", default=""),
    Field("guardrail_triggered", bool, None, TRUE_OR_FALSE, default=None),
    Field("feedback", Literal[1, -1], None, "must be +1 or -1", default=None),
    # A canary's shadow stage: the request was mirrored to this version, whose answer nobody was served.
    # It counts for the rollout's checks, never as the version's served traffic (the roll-ups skip it).
    Field("shadow", bool, None, TRUE_OR_FALSE, default=False),
)
FIELD_NAMES = frozenset(f.name for f in FIELDS)


# --- What the declaration gives ----------------------------------------------------------------------


def _msgspec_type(field: Field) -> Any:
    tp = field.type if field.constraint is None else Annotated[field.type, field.constraint]
    # An optional field defaults to UNSET, so the keys a client sent can be counted (see validate_body).
    return tp if field.default is REQUIRED else Union[tp, None, UnsetType]  # noqa: UP007 (built at run time)


DecodedEvent = msgspec.defstruct(
    "DecodedEvent",
    [(f.name, _msgspec_type(f)) if f.default is REQUIRED else (f.name, _msgspec_type(f), UNSET) for f in FIELDS],
    kw_only=True,
    forbid_unknown_fields=True,
)


class DecodedBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[DecodedEvent], Meta(min_length=1, max_length=MAX_EVENTS)]


class CleanEvent(NamedTuple("CleanEventFields", [("index", int), *((f.name, f.type) for f in FIELDS)])):
    """One validated event: its position in the batch (`index`), then the fields of FIELDS in order, the
    defaults standing in for those not given. A named tuple: 10,000 of them are built per request, and a
    frozen dataclass's __init__ costs several times more."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        """What served the request: "model" or "prompt"."""
        return "model" if self.prompt is None else "prompt"

    @property
    def name(self) -> str:
        """The model's or the prompt's name."""
        return self.model if self.prompt is None else self.prompt


_DEFAULTS = tuple(None if f.default is REQUIRED else f.default for f in FIELDS)
_TIMESTAMP = [f.name for f in FIELDS].index("timestamp")
_FEATURES = [f.name for f in FIELDS].index("features")


def clean_event(index: int, values: Sequence) -> CleanEvent:
    """The CleanEvent of one event's values, in FIELDS order: None or UNSET where a field was not given
    (or was refused), and the row's default stands in; a timestamp without a time zone is UTC."""
    row = [default if value is None or value is UNSET else value for value, default in zip(values, _DEFAULTS, strict=True)]
    ts = row[_TIMESTAMP]
    if ts is not None and ts.tzinfo is None:
        row[_TIMESTAMP] = ts.replace(tzinfo=UTC)
    row.insert(0, index)
    return CleanEvent._make(row)  # faster than passing 23 arguments


def event_problems(event: CleanEvent, latest: datetime) -> list[tuple[str, str]]:
    """The rules between fields, broken: (field, message) each. Exactly one of model and prompt; a
    timestamp no later than `latest`; cached tokens counted inside the input tokens and reasoning tokens
    inside the output tokens (so those must be given, and at least as many); faithfulness at most 1.
    Fields the strict path refused are None here, as if not given."""
    problems = []
    if (event.model is None) is (event.prompt is None):
        problems.append(("model", MODEL_OR_PROMPT))
    if event.timestamp is not None and event.timestamp > latest:
        problems.append(("timestamp", "is in the future"))
    if event.cached_tokens:  # 0 counts nothing
        if event.input_tokens is None:
            problems.append(("input_tokens", "required when cached_tokens is given (it counts them)"))
        elif event.cached_tokens > event.input_tokens:
            problems.append(("cached_tokens", "cannot exceed input_tokens (they are counted inside it)"))
    if event.cache_creation_tokens:
        if event.input_tokens is None:
            problems.append(("input_tokens", "required when cache_creation_tokens is given (it counts them)"))
        elif event.cache_creation_tokens + (event.cached_tokens or 0) > event.input_tokens:
            problems.append(("cache_creation_tokens", "with cached_tokens, cannot exceed input_tokens (both are counted inside it)"))
    if event.reasoning_tokens:
        if event.output_tokens is None:
            problems.append(("output_tokens", "required when reasoning_tokens is given (it counts them)"))
        elif event.reasoning_tokens > event.output_tokens:
            problems.append(("reasoning_tokens", "cannot exceed output_tokens (they are counted inside it)"))
    if event.faithfulness is not None and event.faithfulness > 1:
        problems.append(("faithfulness", "must be from 0 to 1"))
    return problems


# --- The strict path: every problem, named ---------------------------------------------------------

# (name, required, check) of each field, as plain tuples: the loop below runs for every field of every event.
_STRICT = tuple((f.name, f.default is REQUIRED, f.check or strict_check(f.type, f.constraint)) for f in FIELDS)
_MESSAGE = {f.name: f.message for f in FIELDS}


def validate_batch(payload, *, now: datetime | None = None) -> list[CleanEvent]:
    """The events of `{"events": [...]}`, cleaned; BatchInvalid lists every problem as {index, field, message}."""
    latest = (now or datetime.now(UTC)) + FUTURE_SLACK
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise BatchInvalid([{"index": None, "field": "events", "message": "send {\"events\": [...]}"}])
    events = payload["events"]
    if not events:
        raise BatchInvalid([{"index": None, "field": "events", "message": "the batch is empty"}])
    if len(events) > MAX_EVENTS:
        raise BatchInvalid([{"index": None, "field": "events", "message": f"at most {MAX_EVENTS} events per request, got {len(events)}"}])
    errors: list[dict] = []
    clean: list[CleanEvent] = []
    for i, event in enumerate(events):
        if len(errors) >= MAX_ERRORS:
            break
        if not isinstance(event, dict):
            errors.append({"index": i, "field": "", "message": "each event must be an object"})
            continue
        problems: list[tuple[str, str]] = []
        if not event.keys() <= FIELD_NAMES:
            unknown = sorted(event.keys() - FIELD_NAMES)
            problems.append((unknown[0], "unknown field" + (f" (and {', '.join(unknown[1:])})" if len(unknown) > 1 else "")))
        values = []
        for name, required, check in _STRICT:
            value = event.get(name)
            if value is None:
                if required:
                    problems.append((name, _MESSAGE[name]))
            else:
                try:
                    value = check(value)
                except Refused as refused:
                    problems.append((refused.field or name, refused.message or _MESSAGE[name]))
                    value = None
            values.append(value)
        cleaned = clean_event(i, values)
        for problem in event_problems(cleaned, latest):
            if all(field != problem[0] for field, _ in problems):  # a field refused on its own is named once
                problems.append(problem)
        if problems:
            errors.extend({"index": i, "field": field, "message": message} for field, message in problems)
        else:
            clean.append(cleaned)
    if errors:
        raise BatchInvalid(errors)
    return clean


# --- The fast path: msgspec decodes and type-checks a whole body in C ----------------------------
#
# Parsing a valid batch of 10,000 events x 20 features with the json module and checking it in
# validate_batch takes more than twice as long as msgspec doing both. The fast path only ever ACCEPTS:
# whenever it is not sure (any type problem, a date msgspec reads differently, a key that might repeat,
# a broken rule between fields), it returns None and the caller falls back to the strict parser and
# validate_batch, which stay the reference and list every problem.

_DECODER = msgspec.json.Decoder(DecodedBatch)
_FIELD_COUNT = len(FIELDS)
_SPACE_BEFORE_COLON = re.compile(rb'"\s+:')


def validate_body(body: bytes, *, now: datetime | None = None) -> list[CleanEvent] | None:
    """The clean events of a valid JSON body, exactly as validate_batch would return them; None
    when the body is not plainly valid (the caller then takes the strict path for the verdict)."""
    # Repeated keys: msgspec keeps the last one silently. Without whitespace before a colon and
    # without an escaped quote before one, every '":' in the body closes a key (or opens a string
    # starting with ':'), so that count equals the number of keys decoded only if none repeats.
    if b'\\":' in body or _SPACE_BEFORE_COLON.search(body):
        return None
    try:
        decoded = _DECODER.decode(body).events
    except msgspec.DecodeError:  # also msgspec.ValidationError
        return None
    latest = (now or datetime.now(UTC)) + FUTURE_SLACK
    keys = 1  # "events"
    clean = []
    for i, event in enumerate(decoded):
        values = msgspec.structs.astuple(event)
        keys += _FIELD_COUNT - values.count(UNSET) + len(values[_FEATURES] or ())
        cleaned = clean_event(i, values)
        if event_problems(cleaned, latest):
            return None
        clean.append(cleaned)
    if body.count(b'":') != keys:
        return None
    return clean
