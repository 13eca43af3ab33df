"""Each runbook step type is implemented by a class named after it, listed in the one registry."""

from __future__ import annotations

import typing

from alertbot.runbooks.model import Step
from alertbot.runbooks.registry import STEPS


def class_name(step_type: str) -> str:
    """``istio.rollback`` → ``IstioRollbackStep``; ``k8s.rollout_undo`` → ``K8sRolloutUndoStep``."""
    words = step_type.replace(".", "_").split("_")
    return "".join(word[:1].upper() + word[1:] for word in words) + "Step"


def test_every_step_class_is_named_like_its_type() -> None:
    """A reader finds the code of a step type by its name: the registry maps each type to its namesake."""
    assert {step_type: type(step).__name__ for step_type, step in STEPS.items()} == {
        step_type: class_name(step_type) for step_type in STEPS
    }


def test_the_registry_lists_every_step_type_a_runbook_may_use() -> None:
    """Every step type the runbook schema accepts has an implementation, and nothing else is registered."""
    (union, *_) = typing.get_args(Step)
    declared = {typing.get_args(model.model_fields["type"].annotation)[0] for model in typing.get_args(union)}
    assert declared == set(STEPS)
