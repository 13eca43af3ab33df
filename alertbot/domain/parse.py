"""Parsing at the edge: webhook bodies, SLI values, durations. Errors say what and where."""

from __future__ import annotations

import difflib
import json
import math
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainSerializer, ValidationError
from pydantic_core import ErrorDetails

from alertbot.domain.matchers import compile_label_regex
from alertbot.domain.models import Alert, WebhookEnvelope, WebhookPayload
from alertbot.domain.normalise import DEFAULT_MAX_VALUE_BYTES, Normalising
from alertbot.errors import PayloadError


def valid_regex(value: str) -> str:
    """A pydantic validator: the value must compile as a regular expression (RE2, like matchers)."""
    compile_label_regex(value)  # ValueError naming the expression and why
    return value


Regex = Annotated[str, AfterValidator(valid_regex)]


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``('alerts', 0, 'labels')`` → ``alerts[0].labels``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


Loc = tuple[int | str, ...]


def describe_validation_error(
    exc: ValidationError,
    *,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    where: Callable[[Loc], str] | None = None,
) -> str:
    """One line per problem: ``key.path: message``, at most five, then a count of the rest.

    ``model`` (the validated class) lets a misspelt key name the key it was probably meant to be;
    ``where`` gives a problem's place in its source (``file:line: ``), put in front of it."""
    lines = []
    for err in exc.errors(include_url=False)[:5]:
        loc = tuple(err["loc"])
        path = format_loc(loc)
        path = f"{prefix}.{path}" if prefix and path != "(root)" else (prefix or path)
        lines.append(f"{where(loc) if where else ''}{path}: {_problem(err, loc, model)}")
    extra = exc.error_count() - len(lines)
    if extra > 0:
        lines.append(f"... and {extra} more")
    return "; ".join(lines)


def _problem(err: ErrorDetails, loc: Loc, model: type[BaseModel] | None) -> str:
    if err["type"] == "extra_forbidden":
        known = _keys_at(model, loc[:-1]) if model is not None else set()
        close = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1, cutoff=0.6)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys, got {_kind(err['input'])}"
    return err["msg"].removeprefix("Value error, ")


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)


def _keys_at(model: type[BaseModel], loc: Loc) -> set[str]:
    """The keys a mapping at ``loc`` of ``model``'s input may have (empty when it is not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            if field is None:
                return set()
            current = _unwrap(field.annotation)
        elif get_origin(current) in (list, dict):
            current = _unwrap(get_args(current)[-1])
        else:
            return set()
    if isinstance(current, type) and issubclass(current, BaseModel):
        return {f.alias or name for name, f in current.model_fields.items()}
    return set()


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` → ``X``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


MAX_JSON_DEPTH = 64  # an Alertmanager payload nests 4 deep; Slack and API bodies a few more
MAX_INT_DIGITS = 4300  # Python's own limit for converting digits to an int (sys.get_int_max_str_digits)


def _json_depth_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` containers deep (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def decode_json(body: bytes, *, what: str = "body") -> Any:
    """UTF-8 JSON → Python values, or ``PayloadError`` saying what is wrong: not UTF-8, not JSON,
    nested deeper than ``MAX_JSON_DEPTH``, or an integer longer than ``MAX_INT_DIGITS`` digits."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # int() refused a number past its digit limit
        raise PayloadError(f"{what} has a number longer than {MAX_INT_DIGITS} digits") from None
    if not _json_depth_within(data, MAX_JSON_DEPTH):
        raise PayloadError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


@dataclass(frozen=True)
class RejectedAlert:
    """One alert of a payload that could not be processed: what it was, and why not."""

    index: int
    raw: Any
    reason: str
    code: str = "invalid"  # the metric's label: a fixed set of values


@dataclass(frozen=True)
class ParsedWebhook:
    """A webhook body taken apart: the processable alerts (``payload``; None when there is none),
    the rejected ones, and the envelope's receiver and group key (for the rejected records)."""

    payload: WebhookPayload | None
    rejected: list[RejectedAlert] = field(default_factory=list)
    receiver: str = ""
    group_key: str = ""

    def problem(self) -> str:
        """Why nothing could be processed (when ``payload`` is None)."""
        return "; ".join(r.reason for r in self.rejected[:5]) + (
            f"; ... and {len(self.rejected) - 5} more" if len(self.rejected) > 5 else ""
        )


def parse_alerts(body: bytes, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> ParsedWebhook:
    """Raw bytes from Alertmanager → its alerts, each validated and normalised on its own.

    The envelope (JSON, version, status, a non-empty list of alerts) must be right, else
    ``PayloadError``. Each alert is then validated alone, with out-of-range times clamped and
    oversized values cut (``alertbot.domain.normalise``); one that still fails is returned as
    rejected instead of failing the others.
    """
    data = decode_json(body)
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if version is not None and version != "4":
        raise PayloadError(f"version: unsupported webhook payload version {version!r}, expected '4'")
    try:
        # The envelope's own label maps are bounded like an alert's (what was cut is noted per alert).
        envelope = WebhookEnvelope.model_validate(data, context=Normalising(max_value_bytes))
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None
    alerts: list[Alert] = []
    rejected: list[RejectedAlert] = []
    for index, raw in enumerate(envelope.alerts):
        try:
            alerts.append(Alert.model_validate(raw, context=Normalising(max_value_bytes)))
        except ValidationError as exc:
            rejected.append(RejectedAlert(index, raw, describe_validation_error(exc, prefix=f"alerts[{index}]")))
    payload = None
    if alerts:
        values = envelope.model_dump(exclude={"alerts"})
        payload = WebhookPayload.model_validate({**values, "alerts": alerts}, context=Normalising(max_value_bytes))
    return ParsedWebhook(payload, rejected, envelope.receiver, envelope.group_key)


def parse_webhook(body: bytes, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> WebhookPayload:
    """Raw bytes from Alertmanager → a validated payload, or ``PayloadError`` naming the problem
    (any alert that cannot be processed is one: for a file given on the command line, say)."""
    parsed = parse_alerts(body, max_value_bytes=max_value_bytes)
    if parsed.rejected or parsed.payload is None:
        raise PayloadError(parsed.problem())
    return parsed.payload


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?[Ii]nf"
_VALUE_RE = re.compile(rf"^\s*({_NUMBER})\s*(%|ns|us|µs|ms|s|m|h)?\s*$")
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_sli_value(raw: str, sli: str) -> float | None:
    """A numeric SLI value from an annotation, normalised; ``None`` when it is not one.

    ``error_rate`` and ``load`` are ratios: ``"0.072"`` and ``"7.2%"`` are the same.
    ``latency`` is seconds: ``"6.3"``, ``"6.3s"`` and ``"6300ms"`` are the same.
    A unit that does not fit the SLI (``"5ms"`` for an error rate) is not a value.
    """
    match = _VALUE_RE.match(raw)
    if not match:
        return None
    number = float(match.group(1))
    unit = match.group(2)
    if math.isnan(number):
        return None
    if sli == "latency":
        if unit == "%":
            return None
        return number * _TIME_UNITS[unit or "s"]
    if unit == "%":
        return number / 100.0
    if unit is not None:
        return None
    return number


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(raw: str | int | float | timedelta) -> timedelta:
    """``"10m"``, ``"1h30m"``, ``"250ms"``, or a number of seconds → ``timedelta``."""
    if isinstance(raw, timedelta):
        return raw
    if isinstance(raw, bool):
        raise ValueError("expected a duration such as '30s', '10m' or '1h30m'")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError("duration must not be negative")
        return timedelta(seconds=raw)
    text = raw.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {raw!r}: expected a duration such as '30s', '10m' or '1h30m'")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return f"{int(value.total_seconds() * 1000)}ms"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


# A duration field in config and runbook models. In JSON it is its number of seconds (which
# parse_duration reads back), not ISO 8601.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: v.total_seconds(), return_type=float, when_used="json"),
]
