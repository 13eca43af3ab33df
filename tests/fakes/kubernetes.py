"""A fake Kubernetes API server: VirtualServices (validated against the Istio CRD schema) and
Deployments (their scale subresource too), with faithful JSON patch (RFC 6902: a failing ``test`` →
422), server-side dry-run, bearer auth, RBAC refusals and concurrent edits on cue — and list + watch
as the real API serves them: a resourceVersion per change, watch streams of newline-delimited
events resumable from a resourceVersion, ``410 Gone`` (an ERROR event) for a compacted one, and
streams that can be cut on cue."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
import zlib
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import jsonschema
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.helpers import DATA

CRD = yaml.safe_load((DATA / "specs" / "istio-virtualservice-crd.yaml").read_text())
# Built once: jsonschema.validate() would re-check the (large) CRD schema itself on every call.
VALIDATORS = {v["name"]: jsonschema.Draft7Validator(v["schema"]["openAPIV3Schema"]) for v in CRD["spec"]["versions"]}
TOKEN = "fake-k8s-token"


class PatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"invalid path {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def apply_json_patch(doc: Any, ops: Sequence[Mapping[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            parent, key = _parent(doc, _pointer(op["path"]))
            if op["op"] == "test":
                actual = parent[int(key)] if isinstance(parent, list) else parent[key]
                if actual != op["value"]:
                    raise PatchError(f"test operation on {op['path']} failed")
            elif op["op"] == "replace":
                if isinstance(parent, list):
                    parent[int(key)] = op["value"]
                elif key not in parent:
                    raise PatchError(f"replace on missing {op['path']}")
                else:
                    parent[key] = op["value"]
            elif op["op"] == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if key == "-" else int(key), op["value"])
                else:
                    parent[key] = op["value"]
            elif op["op"] == "remove":
                del parent[int(key) if isinstance(parent, list) else key]
            else:
                raise PatchError(f"unsupported op {op['op']!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise PatchError(f"{op.get('op')} {op.get('path')}: {exc}") from None
    return doc


def status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )


class FakeKubernetes:
    def __init__(self, *, served_versions: tuple[str, ...] = ("v1", "v1beta1")) -> None:
        self.served = served_versions
        self.virtualservices: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicas: dict[tuple[str, str], int] = {}
        self.restarts: dict[tuple[str, str], str] = {}  # deployment → restartedAt annotation
        self.rollouts: dict[tuple[str, str], dict[str, Any]] = {}  # Argo Rollouts: their status
        self.applications: dict[tuple[str, str], dict[str, Any]] = {}  # Argo CD Applications, read only
        self.forbidden: set[tuple[str, str]] = set()  # (verb, resource) refused with 403
        self.patches: list[dict[str, Any]] = []  # every PATCH received, dry-run or not
        self.after_get: Callable[[], None] | None = None  # a concurrent editor, run once after a GET
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], dict[str, Any]] = {}  # the controller's, one per revision
        self.requests: list[str] = []  # "list <path>" / "watch <path> from <rv>"
        self.log: list[str] = []  # every request received: "<METHOD> <path>"
        self._rv = 100
        self._history: list[tuple[int, str, str, str, dict[str, Any]]] = []  # rv, resource, ns, type, object
        self._compacted_through = 0  # events up to here are gone: older watches get 410
        self._changed: asyncio.Condition | None = None
        self._cut = 0  # bumped to end every open watch stream
        self.app = web.Application(middlewares=[self._auth])
        self.app.on_shutdown.append(self._end_watches)
        self.app.router.add_get(
            "/apis/networking.istio.io/{version}/namespaces/{ns}/virtualservices", self._collection("virtualservices")
        )
        self.app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments", self._collection("deployments"))
        base = "/apis/networking.istio.io/{version}/namespaces/{ns}/virtualservices/{name}"
        self.app.router.add_get(base, self._get_vs)
        self.app.router.add_patch(base, self._patch_vs)
        self.app.router.add_patch("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self._patch_deployment)
        self.app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments/{name}", self._get_deployment)
        self.app.router.add_get("/apis/apps/v1/namespaces/{ns}/replicasets", self._list_replicasets)
        self.app.router.add_patch(
            "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}/status", self._patch_rollout_status
        )
        self.app.router.add_get("/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications/{name}", self._get_application)
        scale = "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
        self.app.router.add_get(scale, self._get_scale)
        self.app.router.add_patch(scale, self._patch_scale)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.log.append(f"{request.method} {request.path}")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    # -- changes, and the history watches replay --------------------------------------------------

    def _store(self, resource: str, obj: dict[str, Any]) -> None:
        """Save a new version of an object, with the next resourceVersion, and tell watchers."""
        table = self.virtualservices if resource == "virtualservices" else self.deployments
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        kind = "MODIFIED" if key in table else "ADDED"
        meta.setdefault("uid", str(uuid.uuid4()))
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        table[key] = obj
        self._history.append((self._rv, resource, key[0], kind, copy.deepcopy(obj)))
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            changed = self._changed

            async def wake() -> None:
                async with changed:
                    changed.notify_all()

            asyncio.get_running_loop().create_task(wake())

    def add_virtualservice(self, vs: dict[str, Any]) -> None:
        self._store("virtualservices", copy.deepcopy(vs))

    def set_weights(self, namespace: str, name: str, weights: dict[str, int]) -> None:
        """Someone edits the weights (kubectl edit, a GitOps sync) of every route over these subsets."""
        vs = copy.deepcopy(self.virtualservices[(namespace, name)])
        for http in vs["spec"]["http"]:
            for dest in http["route"]:
                if dest["destination"].get("subset") in weights:
                    dest["weight"] = weights[dest["destination"]["subset"]]
        vs["metadata"]["managedFields"] = [
            {"manager": "deploy-bot", "operation": "Update", "time": "2026-11-29T19:50:00Z"}
        ]
        self._store("virtualservices", vs)

    def add_deployment(self, namespace: str, name: str, image: str, replicas: int = 3) -> None:
        self.replicas[(namespace, name)] = replicas
        self._roll(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "generation": 0,
                    "labels": {"app": name},
                    "annotations": {},
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": name, "image": image}]},
                    },
                },
            }
        )

    def set_image(self, namespace: str, name: str, image: str, *, manager: str = "kubectl-set") -> None:
        """``kubectl set image``: a new pod template, so a new revision (and ReplicaSet) rolls out."""
        deployment = copy.deepcopy(self.deployments[(namespace, name)])
        deployment["metadata"]["managedFields"] = [
            {"manager": manager, "operation": "Update", "time": "2026-11-29T19:50:00Z"}
        ]
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self._roll(deployment)

    def _roll(self, deployment: dict[str, Any]) -> None:
        """What the Deployment controller does with a new pod template: the next revision, on the
        ReplicaSet with that template (an old one comes back with the new revision number)."""
        meta = deployment["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        meta["generation"] += 1
        revision = 1 + max(
            (
                int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                for (ns, _), rs in self.replicasets.items()
                if ns == namespace and rs["metadata"]["labels"]["app"] == name
            ),
            default=0,
        )
        meta["annotations"]["deployment.kubernetes.io/revision"] = str(revision)
        self._store("deployments", deployment)
        template = copy.deepcopy(deployment["spec"]["template"])
        template_hash = f"{zlib.crc32(json.dumps(template, sort_keys=True).encode()):010d}"
        template["metadata"]["labels"]["pod-template-hash"] = template_hash
        self.replicasets[(namespace, f"{name}-{template_hash}")] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{template_hash}",
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": dict(template["metadata"]["labels"])},
                "template": template,
            },
        }

    def image(self, namespace: str, name: str) -> str:
        return str(self.deployments[(namespace, name)]["spec"]["template"]["spec"]["containers"][0]["image"])

    async def _get_deployment(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        refused = self._check("get", "deployments", request, table=self.deployments)
        if refused:
            return refused
        return web.json_response(self.deployments[key])

    async def _list_replicasets(self, request: web.Request) -> web.Response:
        refused = self._check("list", "replicasets", request)
        if refused:
            return refused
        wanted = dict(part.split("=", 1) for part in request.query.get("labelSelector", "").split(",") if part)
        items = [
            rs
            for (ns, _), rs in sorted(self.replicasets.items())
            if ns == request.match_info["ns"] and all(rs["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        return web.json_response(
            {
                "kind": "ReplicaSetList",
                "apiVersion": "apps/v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    def compact(self) -> None:
        """etcd compaction: history so far is gone; a watch from before now gets 410 Gone."""
        self._compacted_through = self._rv

    def cut_watches(self) -> None:
        """Every open watch stream ends abruptly (an API server restart, a load balancer timeout)."""
        self._cut += 1
        self._notify()

    async def _end_watches(self, _app: web.Application) -> None:
        self.cut_watches()

    def _collection(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            version = request.match_info.get("version", "v1")
            if resource == "virtualservices" and version not in self.served:
                return status(404, "NotFound", "the server could not find the requested resource")
            refused = self._check("watch" if request.query.get("watch") else "list", resource, request)
            if refused:
                return refused
            if request.query.get("watch") in ("1", "true"):
                return await self._watch(request, resource)
            self.requests.append(f"list {request.path}")
            table = self.virtualservices if resource == "virtualservices" else self.deployments
            items = [obj for (ns, _), obj in sorted(table.items()) if ns == request.match_info["ns"]]
            return web.json_response(
                {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(self._rv)}, "items": items}
            )

        return handle

    async def _watch(self, request: web.Request, resource: str) -> web.StreamResponse:
        namespace = request.match_info["ns"]
        since = int(request.query.get("resourceVersion") or self._rv)
        self.requests.append(f"watch {request.path} from {since}")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if since < self._compacted_through:
            gone = {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self._compacted_through})",
                    "reason": "Expired",
                    "code": 410,
                },
            }
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        if self._changed is None:
            self._changed = asyncio.Condition()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(request.query.get("timeoutSeconds", "300"))
        cut, cursor = self._cut, since
        while True:
            if self._cut != cut:
                if request.transport is not None:
                    request.transport.close()  # no proper end of the chunked body: a dropped connection
                return response
            for rv, res, ns, kind, obj in list(self._history):
                if rv > cursor:
                    cursor = rv
                    if res == resource and ns == namespace:
                        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            left = deadline - loop.time()
            if left <= 0:
                return response

            def changed(seen: int = cursor) -> bool:
                return self._rv > seen or self._cut != cut

            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait_for(changed), timeout=left)

    def add_application(self, namespace: str, name: str, sync_policy: dict[str, Any]) -> None:
        """An Argo CD Application (argoproj.io/v1alpha1), as much of it as alertbot reads: its syncPolicy."""
        self.applications[(namespace, name)] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"project": "default", "syncPolicy": sync_policy},
        }

    async def _get_application(self, request: web.Request) -> web.Response:
        refused = self._check("get", "applications", request, table=self.applications, kind="applications.argoproj.io")
        return refused or web.json_response(self.applications[(request.match_info["ns"], request.match_info["name"])])

    def weights(self, namespace: str, name: str) -> list[list[tuple[str, int]]]:
        vs = self.virtualservices[(namespace, name)]
        return [
            [(d["destination"].get("subset", ""), d.get("weight", 0)) for d in http["route"]]
            for http in vs["spec"]["http"]
        ]

    def _check(
        self,
        verb: str,
        resource: str,
        request: web.Request,
        *,
        table: Container[tuple[str, str]] | None = None,
        kind: str = "deployments.apps",
    ) -> web.Response | None:
        """The API server's refusals, in its order: 403 without RBAC permission, then (given the
        ``table`` the object lives in) 404 when it does not exist."""
        if (verb, resource) in self.forbidden:
            ns = request.match_info["ns"]
            return status(
                403,
                "Forbidden",
                f'{resource} "{request.match_info["name"]}" is forbidden: User '
                f'"system:serviceaccount:monitoring:alertbot" cannot {verb} resource "{resource}" in API '
                f'group "" in the namespace "{ns}"',
            )
        name = request.match_info.get("name", "")
        if table is not None and (request.match_info["ns"], name) not in table:
            return status(404, "NotFound", f'{kind} "{name}" not found')
        return None

    async def _get_vs(self, request: web.Request) -> web.Response:
        version, key = request.match_info["version"], (request.match_info["ns"], request.match_info["name"])
        if version not in self.served:
            return status(404, "NotFound", "the server could not find the requested resource")
        refused = self._check(
            "get", "virtualservices", request, table=self.virtualservices, kind="virtualservices.networking.istio.io"
        )
        if refused:
            return refused
        body = {**self.virtualservices[key], "apiVersion": f"networking.istio.io/{version}"}
        if self.after_get is not None:
            editor, self.after_get = self.after_get, None
            editor()
        return web.json_response(body)

    async def _patch_vs(self, request: web.Request) -> web.Response:
        version, key = request.match_info["version"], (request.match_info["ns"], request.match_info["name"])
        if version not in self.served:
            return status(404, "NotFound", "the server could not find the requested resource")
        refused = self._check("patch", "virtualservices", request)
        if refused:
            return refused
        if request.content_type != "application/json-patch+json":
            return status(415, "UnsupportedMediaType", f"expected a JSON patch, got {request.content_type}")
        ops = await request.json()
        dry_run = request.query.get("dryRun") == "All"
        self.patches.append({"path": request.path, "ops": ops, "dry_run": dry_run})
        if key not in self.virtualservices:
            return status(404, "NotFound", f'virtualservices.networking.istio.io "{key[1]}" not found')
        try:
            patched = apply_json_patch(self.virtualservices[key], ops)
        except PatchError as exc:
            return status(422, "Invalid", str(exc))
        try:
            VALIDATORS[version].validate({k: v for k, v in patched.items() if k in ("spec", "status")})
        except jsonschema.ValidationError as exc:
            return status(422, "Invalid", f"schema: {exc.message} at {list(exc.absolute_path)}")
        if not dry_run:
            _managed_by(patched, request)
            self._store("virtualservices", patched)
        return web.json_response(patched)

    async def _patch_deployment(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        refused = self._check("patch", "deployments", request, table=self.replicas)
        if refused:
            return refused
        if request.content_type == "application/json-patch+json" and key in self.deployments:
            return await self._json_patch_deployment(request, key)
        if request.content_type != "application/merge-patch+json":
            return status(415, "UnsupportedMediaType", request.content_type)
        patch = await request.json()
        self.patches.append({"path": request.path, "ops": patch, "dry_run": request.query.get("dryRun") == "All"})
        stamp = patch["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        if request.query.get("dryRun") != "All":
            self.restarts[key] = stamp
        return web.json_response(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": key[1], "namespace": key[0]},
                "spec": {
                    "replicas": self.replicas[key],
                    "selector": {"matchLabels": {"app": key[1]}},
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}},
                },
            }
        )

    async def _json_patch_deployment(self, request: web.Request, key: tuple[str, str]) -> web.Response:
        ops = await request.json()
        dry_run = request.query.get("dryRun") == "All"
        self.patches.append({"path": request.path, "ops": ops, "dry_run": dry_run})
        try:
            patched = apply_json_patch(self.deployments[key], ops)
        except PatchError as exc:
            return status(422, "Invalid", str(exc))
        if not dry_run and patched["spec"]["template"] != self.deployments[key]["spec"]["template"]:
            _managed_by(patched, request)
            self._roll(patched)
        return web.json_response(self.deployments[key] if not dry_run else patched)

    async def _patch_rollout_status(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        if key not in self.rollouts:
            return status(404, "NotFound", f'rollouts.argoproj.io "{key[1]}" not found')
        if request.content_type != "application/merge-patch+json":
            return status(415, "UnsupportedMediaType", request.content_type)
        patch = await request.json()
        self.patches.append({"path": request.path, "ops": patch, "dry_run": request.query.get("dryRun") == "All"})
        if request.query.get("dryRun") != "All":
            self.rollouts[key].update(patch.get("status", {}))
        return web.json_response(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": key[1], "namespace": key[0]},
                "status": self.rollouts[key],
            }
        )

    def _scale(self, key: tuple[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": key[1], "namespace": key[0]},
            "spec": {"replicas": self.replicas[key]},
            "status": {"replicas": self.replicas[key]},
        }

    async def _get_scale(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        refused = self._check("get", "deployments/scale", request, table=self.replicas)
        if refused:
            return refused
        return web.json_response(self._scale(key))

    async def _patch_scale(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        refused = self._check("patch", "deployments/scale", request)
        if refused:
            return refused
        ops = json.loads(await request.text())
        self.patches.append({"path": request.path, "ops": ops, "dry_run": request.query.get("dryRun") == "All"})
        try:
            patched = apply_json_patch(self._scale(key), ops)
        except PatchError as exc:
            return status(422, "Invalid", str(exc))
        if request.query.get("dryRun") != "All":
            self.replicas[key] = int(patched["spec"]["replicas"])
        return web.json_response(self._scale(key))


def _managed_by(obj: dict[str, Any], request: web.Request) -> None:
    """The API server notes who wrote last: the fieldManager parameter, else the client's name."""
    manager = request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
    obj["metadata"]["managedFields"] = [{"manager": manager, "operation": "Update", "time": "2026-11-29T19:55:00Z"}]


def kubeconfig(server_url: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
            "users": [{"name": "alertbot", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "alertbot"}}],
        }
    )


def seed_canary() -> dict[str, Any]:
    """The seed's canary: nutrition-service, 90 % stable / 10 % canary."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "nutrition-service-canary", "namespace": "ai-nutritionist"},
        "spec": {
            "hosts": ["nutrition-service"],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "nutrition-service", "subset": "stable"}, "weight": 90},
                        {"destination": {"host": "nutrition-service", "subset": "canary"}, "weight": 10},
                    ],
                }
            ],
        },
    }
