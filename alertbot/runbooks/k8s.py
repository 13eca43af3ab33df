"""Kubernetes access for runbook steps, through the official client (run on a worker thread).

Configuration: ``kubernetes.kubeconfig`` in the config, else ``$KUBECONFIG``, else the in-cluster
service account. VirtualServices are read as ``networking.istio.io/v1``, falling back to
``v1beta1`` on API servers (older Istio) that do not serve v1. Errors are ``RunbookError``s that say
what to do: 403 names the missing RBAC permission, 422 on a guarded patch means a concurrent edit.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from alertbot.domain.changes import FIELD_MANAGER
from alertbot.domain.jsontypes import KubeObject
from alertbot.errors import RunbookError

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1")
JSON_PATCH = "application/json-patch+json"
T = TypeVar("T")


class JsonPatchOp(TypedDict):
    """One operation of a JSON patch (RFC 6902) as alertbot writes them: a guard, then the change."""

    op: Literal["test", "replace", "add"]
    path: str
    value: object  # a part of the object as read (a route's destinations, a pod template) or a number


class WriteOptions(TypedDict):
    """What every write passes to the client: server-side dry run or not, and alertbot's field manager."""

    dry_run: str | None
    field_manager: str


def api_client(kubeconfig: Path | None) -> k8s.ApiClient:
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    try:
        if path is not None:
            return cast(k8s.ApiClient, k8s_config.new_client_from_config(config_file=str(path)))  # type: ignore[no-untyped-call]
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return k8s.ApiClient(configuration)
    except (k8s_config.ConfigException, OSError) as exc:
        where = str(path) if path else "in-cluster service account"
        raise RunbookError(f"no usable Kubernetes configuration ({where}): {exc}") from None


class Kubernetes:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.configuration: k8s.Configuration = api.configuration  # host and credentials, for the watch
        self._custom = k8s.CustomObjectsApi(api)
        self._apps = k8s.AppsV1Api(api)
        self._vs_version: str | None = None

    async def _call(self, what: str, verb: str, resource: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise _api_error(what, verb, resource, exc) from None
        except (Urllib3Error, OSError) as exc:
            raise RunbookError(f"{what}: Kubernetes API server unreachable: {type(exc).__name__}") from None

    async def get_virtualservice(self, namespace: str, name: str) -> KubeObject:
        """Read it as v1; an API server that does not serve v1 answers 404, so then try v1beta1."""
        what = f"virtualservice {namespace}/{name}"
        versions = [self._vs_version] if self._vs_version else list(ISTIO_VERSIONS)
        first_error: RunbookError | None = None
        for version in versions:

            def get(version: str = version) -> KubeObject:
                return cast(
                    KubeObject,
                    self._custom.get_namespaced_custom_object(ISTIO_GROUP, version, namespace, "virtualservices", name),
                )

            try:
                vs = await self._call(what, "get", "virtualservices.networking.istio.io", get)
            except RunbookError as exc:
                if not exc.message.startswith(f"{what}: not found"):
                    raise
                first_error = first_error or exc
                continue
            self._vs_version = version
            return vs
        assert first_error is not None
        raise first_error

    async def patch_virtualservice(
        self, namespace: str, name: str, patch: list[JsonPatchOp], *, dry_run: bool
    ) -> KubeObject:
        version = self._vs_version or ISTIO_VERSIONS[0]

        def apply() -> KubeObject:
            return cast(
                KubeObject,
                self._custom.patch_namespaced_custom_object(
                    ISTIO_GROUP,
                    version,
                    namespace,
                    "virtualservices",
                    name,
                    _body(patch),
                    **_write_options(dry_run),
                    _content_type=JSON_PATCH,
                ),
            )

        return await self._call(
            f"virtualservice {namespace}/{name}", "patch", "virtualservices.networking.istio.io", apply
        )

    async def get_replicas(self, namespace: str, deployment: str) -> int:
        scale = await self._call(
            f"deployment {namespace}/{deployment}",
            "get",
            "deployments/scale",
            lambda: self._apps.read_namespaced_deployment_scale(deployment, namespace),
        )
        return int(scale.spec.replicas or 0) if scale.spec is not None else 0

    async def get_application(self, namespace: str, name: str) -> KubeObject:
        """An Argo CD Application (read only: alertbot never changes one)."""

        def get() -> KubeObject:
            return cast(
                KubeObject,
                self._custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "applications", name),
            )

        return await self._call(f"application {namespace}/{name}", "get", "applications.argoproj.io", get)

    async def abort_rollout(self, namespace: str, name: str, *, dry_run: bool) -> None:
        """What ``kubectl argo rollouts abort`` does: set ``status.abort`` on the Rollout (Argo then
        sends all traffic back to the stable ReplicaSet)."""

        def apply() -> object:
            return self._custom.patch_namespaced_custom_object_status(
                "argoproj.io",
                "v1alpha1",
                namespace,
                "rollouts",
                name,
                {"status": {"abort": True}},
                **_write_options(dry_run),
                _content_type=MERGE_PATCH,
            )

        await self._call(f"rollout {namespace}/{name}", "patch", "rollouts/status.argoproj.io", apply)

    async def rollout_restart(self, namespace: str, deployment: str, *, at: datetime, dry_run: bool) -> None:
        """What ``kubectl rollout restart`` does: stamp the pod template so the Deployment rolls."""
        patch = {
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at.isoformat()}}}}
        }
        await self._call(
            f"deployment {namespace}/{deployment}",
            "patch",
            "deployments",
            lambda: self._apps.patch_namespaced_deployment(
                deployment, namespace, patch, **_write_options(dry_run), _content_type=MERGE_PATCH
            ),
        )

    async def get_deployment(self, namespace: str, name: str) -> KubeObject:
        def get() -> KubeObject:
            resp: Any = self._apps.read_namespaced_deployment(name, namespace, _preload_content=False)
            return cast(KubeObject, json.loads(resp.data))  # raw JSON: no model round-trip

        return await self._call(f"deployment {namespace}/{name}", "get", "deployments", get)

    async def replica_sets(self, namespace: str, match_labels: dict[str, str]) -> list[KubeObject]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))

        def list_them() -> list[KubeObject]:
            resp: Any = self._apps.list_namespaced_replica_set(
                namespace, label_selector=selector, _preload_content=False
            )
            return list(json.loads(resp.data).get("items") or [])

        return await self._call(f"replicasets in {namespace} ({selector})", "list", "replicasets", list_them)

    async def patch_deployment(self, namespace: str, name: str, patch: list[JsonPatchOp], *, dry_run: bool) -> None:
        """A guarded JSON patch of a Deployment (its ``test`` ops make a concurrent change fail it)."""
        await self._call(
            f"deployment {namespace}/{name}",
            "patch",
            "deployments",
            lambda: self._apps.patch_namespaced_deployment(
                name, namespace, _body(patch), **_write_options(dry_run), _content_type=JSON_PATCH
            ),
        )

    async def set_replicas(self, namespace: str, deployment: str, *, expect: int, replicas: int, dry_run: bool) -> None:
        patch = [
            {"op": "test", "path": "/spec/replicas", "value": expect},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]
        await self._call(
            f"deployment {namespace}/{deployment}",
            "patch",
            "deployments/scale",
            lambda: self._apps.patch_namespaced_deployment_scale(
                deployment, namespace, patch, **_write_options(dry_run), _content_type=JSON_PATCH
            ),
        )


MERGE_PATCH = "application/merge-patch+json"


def _body(patch: list[JsonPatchOp]) -> list[KubeObject]:
    """The patch as the client's signature wants it (plain dicts; the same objects)."""
    return cast("list[KubeObject]", patch)


def _write_options(dry_run: bool) -> WriteOptions:
    """Every write: server-side dry run or not, and signed with alertbot's field manager."""
    return {"dry_run": "All" if dry_run else None, "field_manager": FIELD_MANAGER}


def _api_error(what: str, verb: str, resource: str, exc: ApiException) -> RunbookError:
    message = ""
    try:
        message = str(json.loads(exc.body or "{}").get("message", ""))
    except (ValueError, AttributeError):
        message = str(exc.body or "")[:200]
    status = exc.status or 0
    if status == 403:
        return RunbookError(
            f"{what}: forbidden — the service account needs RBAC permission to {verb} {resource} "
            f"in that namespace ({message or exc.reason})"
        )
    if status == 404:
        return RunbookError(f"{what}: not found ({message or exc.reason})")
    if status in (409, 422) and verb == "patch":
        return RunbookError(
            f"{what}: changed since it was read (someone or a controller edited it); nothing "
            f"was changed — plan again ({message or exc.reason})"
        )
    return RunbookError(f"{what}: Kubernetes API answered {status} {exc.reason}: {message}")
