"""The runbook schema. A runbook is data: declared params and a list of typed steps.

Step fields may use ``{{ params.NAME }}``; they are filled in, and checked, before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alertbot.domain.parse import Duration, Regex

_PARAM_REF = re.compile(r"\{\{\s*params\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# Kubernetes object names (DNS-1123): a value that ends up in an API path must be one, so that no
# param can make it another path (``.``, ``..``, ``a/b``). Namespaces are labels (63 characters);
# most object names are subdomains (dot-separated labels, 253 characters).
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
PARAM_TYPES: dict[str, tuple[str, int, str]] = {
    "k8s_namespace": (_DNS_LABEL, 63, "a DNS-1123 label (lower-case letters, digits, '-'; at most 63)"),
    "k8s_name": (_DNS_SUBDOMAIN, 253, "a DNS-1123 name (lower-case letters, digits, '-', '.'; at most 253)"),
}
# Step fields that become part of a Kubernetes API path, and the type a value there must have.
_PATH_FIELDS = {"namespace": "k8s_namespace", "virtualservice": "k8s_name", "deployment": "k8s_name"}


def check_typed(kind: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``kind`` (``k8s_name``, ``k8s_namespace``), or None when it is."""
    pattern, limit, what = PARAM_TYPES[kind]
    if len(value) > limit or not re.fullmatch(pattern, value):
        return f"{value!r} does not match {kind}: it must be {what}"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Param(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    description: str = ""
    required: bool = False
    default: str | None = None
    pattern: Regex | None = None
    # string: any text (``pattern`` may narrow it); k8s_name / k8s_namespace: a DNS-1123 name, for
    # params that end up in a Kubernetes API path.
    type: Literal["string", "k8s_name", "k8s_namespace"] = "string"


class IstioRollback(_Strict):
    """Send all traffic of every HTTP route that splits to the stable subset (100 / 0)."""

    type: Literal["istio.rollback"]
    namespace: str
    virtualservice: str
    stable_subset: str = "stable"


class IstioSetWeights(_Strict):
    """Set the weights of every HTTP route that routes to these subsets (they must sum to 100)."""

    type: Literal["istio.set_weights"]
    namespace: str
    virtualservice: str
    weights: dict[str, int | str]


class IstioRestoreLastGood(_Strict):
    """Set every HTTP route back to the weights last seen while no critical alert fired for the
    VirtualService's service (recorded by the Kubernetes watch)."""

    type: Literal["istio.restore_last_good"]
    namespace: str
    virtualservice: str


class K8sScale(_Strict):
    type: Literal["k8s.scale"]
    namespace: str
    deployment: str
    replicas: int | str


class K8sRolloutRestart(_Strict):
    """The equivalent of ``kubectl rollout restart deployment/NAME``."""

    type: Literal["k8s.rollout_restart"]
    namespace: str
    deployment: str


class K8sRolloutUndo(_Strict):
    """The equivalent of ``kubectl rollout undo deployment/NAME``: the previous revision's pod template."""

    type: Literal["k8s.rollout_undo"]
    namespace: str
    deployment: str


class PrometheusCheck(_Strict):
    """Poll a PromQL query until its value meets ``expect`` (e.g. ``"< 0.01"``) or ``timeout`` passes.

    ``on_fail: warn`` lets the run succeed with a "still failing" note (the change is done; say so);
    ``fail`` fails the run. ``skip_unless``: skip the step when this (templated) value is empty.
    """

    type: Literal["prometheus.check"]
    query: str
    expect: str = Field(pattern=r"^\s*(<|<=|>|>=|==|!=)\s*-?\d+(\.\d+)?\s*$")
    timeout: Duration = Field(default_factory=lambda: timedelta(minutes=2))
    interval: Duration = Field(default_factory=lambda: timedelta(seconds=10))
    on_fail: Literal["warn", "fail"] = "warn"
    skip_unless: str | None = None


class Wait(_Strict):
    type: Literal["wait"]
    duration: Duration


class Notify(_Strict):
    type: Literal["notify"]
    message: str


Step = Annotated[
    IstioRollback
    | IstioSetWeights
    | IstioRestoreLastGood
    | K8sScale
    | K8sRolloutRestart
    | K8sRolloutUndo
    | PrometheusCheck
    | Wait
    | Notify,
    Field(discriminator="type"),
]


class Runbook(_Strict):
    name: str = Field(pattern=_NAME)
    description: str = ""
    risk: Literal["low", "high"] = "low"
    params: list[Param] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_are_declared(self) -> Runbook:
        declared = {p.name for p in self.params}
        if len(declared) != len(self.params):
            raise ValueError("params: each name may be declared once")
        for index, step in enumerate(self.steps):
            for field, value in step.model_dump().items():
                for ref in _PARAM_REF.findall(str(value)):
                    if ref not in declared:
                        raise ValueError(f"steps[{index}].{field}: uses undeclared param {ref!r}")
        return self

    def param_names_problem(self, given: Mapping[str, str]) -> str | None:
        """An unknown param, or a required one given empty or not at all (values are not checked:
        an automation's may still be label templates). ``resolve_params`` and check-config share it."""
        declared = [p.name for p in self.params]
        unknown = sorted(set(given) - set(declared))
        if unknown:
            return f"unknown param {', '.join(unknown)} (runbook {self.name} takes {', '.join(declared) or 'none'})"
        for param in self.params:
            if param.required and not given.get(param.name, param.default):
                return f"param {param.name} is required"
        return None

    def resolve_params(self, given: dict[str, str]) -> dict[str, str]:
        """Declared params with defaults applied; unknown, missing or malformed ones raise ValueError."""
        if (problem := self.param_names_problem(given)) is not None:
            raise ValueError(problem)
        out: dict[str, str] = {}
        for param in self.params:
            name = param.name
            value = given.get(name, param.default)
            if value is None or value == "":
                out[name] = ""  # declared, optional, empty: steps may test it (skip_unless)
                continue
            if param.type != "string" and (why := check_typed(param.type, value)) is not None:
                raise ValueError(f"param {name}: {why}")
            if param.pattern and not re.fullmatch(param.pattern, value):
                raise ValueError(f"param {name}={value!r} does not match {param.pattern}")
            out[name] = value
        return out

    def bound_steps(self, params: dict[str, str]) -> list[Step]:
        """The steps with ``{{ params.x }}`` filled in. A filled-in value that becomes part of a
        Kubernetes API path must be a DNS-1123 name, whatever the param's declared type (ValueError)."""
        bound: list[Step] = []
        for index, step in enumerate(self.steps):
            data = {k: _fill(v, params) for k, v in step.model_dump().items()}
            for field, kind in _PATH_FIELDS.items():
                value = data.get(field)
                if isinstance(value, str) and (why := check_typed(kind, value)) is not None:
                    raise ValueError(f"steps[{index}].{field}: {why}")
            bound.append(type(step).model_validate(data))
        return bound

    def targets(self, params: dict[str, str]) -> list[str]:
        """The Kubernetes objects the steps act on, as ``namespace/name`` (params filled in)."""
        found: list[str] = []
        for step in self.bound_steps(params):
            name = getattr(step, "virtualservice", None) or getattr(step, "deployment", None)
            namespace = getattr(step, "namespace", None)
            if name is not None and namespace is not None:
                found.append(f"{namespace}/{name}")
        return list(dict.fromkeys(found))

    def target_params(self) -> set[str]:
        """The params that choose which Kubernetes object a step acts on (its namespace or name)."""
        names: set[str] = set()
        for step in self.steps:
            for field in _PATH_FIELDS:
                names.update(_PARAM_REF.findall(str(getattr(step, field, ""))))
        return names


def _fill(value: object, params: dict[str, str]) -> object:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match.group(1) not in params:
                raise ValueError(f"param {match.group(1)} has no value")
            return params[match.group(1)]

        return _PARAM_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    return value
