"""Names for the JSON that alertbot does not give a shape of its own.

Everything alertbot defines has a real type (a dataclass, a TypedDict, a pydantic model). What is
left is JSON whose shape belongs to someone else and is passed through, stored or read a key at a
time: these aliases say so where they are used, and are the only free-form dicts in the package.
"""

from __future__ import annotations

from typing import Any, TypeAlias

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
JSONObject: TypeAlias = "dict[str, JSONValue]"
"""Free-form JSON (still free-form: used only where the shape is genuinely open)."""

KubeObject: TypeAlias = dict[str, Any]
"""A Kubernetes object (or a part of one, e.g. a route or a pod template) as the API returns it:
free-form, read a key at a time with defaults and passed back unchanged."""

SlackBlock: TypeAlias = dict[str, Any]
"""A Slack Block Kit block or element: free-form, Slack's own schema."""

SlackPayload: TypeAlias = dict[str, Any]
"""A Slack interaction payload as Slack posts it: free-form, read a key at a time."""
