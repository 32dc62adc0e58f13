"""GET /metrics: Prometheus text, built at scrape time from the totals every process keeps in
Redis (core/metrics.py explains why not prometheus_client's multiprocess mode)."""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core import metrics
from core.sentinel import is_redis_url
from storage.fair_share import backlog_key
from storage.redis_client import redis_for
from storage.runs import HEARTBEATS
from core.queue import RENDER_QUEUE, RENDER_QUEUES, WEBHOOK_QUEUE, render_queues
from storage.pool_health import read_pools
from storage.render_stats import STEP_SECONDS, pool_key

from ..services import Services, get_services

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

# kombu's Redis transport keeps a set per exchange; members are "routing key␆␖pattern␆␖queue".
_BINDINGS = "_kombu.binding.*"
_SEPARATOR = "\x06\x16"


def _broker(services: Services) -> redis.Redis | None:
    settings = services.settings
    url = settings.effective_broker_url
    if url == settings.redis_url:
        return services.runs.redis
    if is_redis_url(url):
        return redis_for(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
    return None  # the embedded in-memory queue


def queue_depths(broker: redis.Redis | None, pools: list[str] = ()) -> dict[str, int]:
    if broker is None:
        return {}
    queues = {RENDER_QUEUE, WEBHOOK_QUEUE, *RENDER_QUEUES.values()}
    queues.update(queue for pool in pools for queue in render_queues(pool).values())  # before any worker declared them
    for binding in broker.scan_iter(_BINDINGS, count=100):
        for member in broker.smembers(binding):
            queues.add(member.rsplit(_SEPARATOR, 1)[-1])
    # Messages of priority 0 sit in the queue's own list, others in "<queue>␆␖<priority>".
    depths = {}
    for queue in sorted(q for q in queues if q):
        depths[queue] = broker.llen(queue) + sum(broker.llen(f"{queue}{_SEPARATOR}{p}") for p in (3, 6, 9))
    return depths


def staged_runs(client: redis.Redis, pools: list[str]) -> GaugeMetricFamily:
    """Runs fair share keeps staged for each render queue: queued, their message not on it yet
    (docs/architecture.md#fair-share); a queue's depth plus these is its backlog."""
    staged = GaugeMetricFamily("renderq_queue_staged", "Runs staged by fair share for each render queue.", labels=["queue"])
    queues = [queue for pool in pools for queue in render_queues(pool).values()]
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(backlog_key(queue))
        for queue, count in zip(queues, pipe.execute()):
            staged.add_metric([queue], count)
    return staged


class RedisCollector:
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self):
        client = self.services.runs.redis
        settings = self.services.settings

        pools = list(dict.fromkeys([*self.services.catalog.pools(), *self.services.runs.index.pools()]))
        depth = GaugeMetricFamily("renderq_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, count in queue_depths(_broker(self.services), pools).items():
            depth.add_metric([queue], count)
        yield depth
        yield staged_runs(client, pools)

        runs = CounterMetricFamily("renderq_runs", "Runs that entered each status (queued includes re-enqueues).", labels=["status"])
        counts = client.hgetall(metrics.RUNS)
        for status in sorted(set(counts) | {"queued", "running", "completed", "failed"}):
            runs.add_metric([status], float(counts.get(status, 0)))
        yield runs

        running = GaugeMetricFamily("renderq_runs_running", "Runs being rendered now (with a live heartbeat).")
        running.add_metric([], client.zcard(HEARTBEATS))
        yield running

        failures = CounterMetricFamily("renderq_run_failures", "Failed runs by problem type.", labels=["problem"])
        for slug, count in sorted(client.hgetall(metrics.FAILURES).items()):
            failures.add_metric([slug], float(count))
        yield failures

        for name, (label, _, documentation) in metrics.HISTOGRAMS.items():
            labels = label.split("_")  # "operation_stage" → operation, stage
            family = HistogramMetricFamily(f"renderq_{name}", documentation, labels=labels)
            for value, histogram in metrics.read_histograms(client, name).items():
                family.add_metric(value.split("/"), histogram.buckets, histogram.sum)
            yield family

        webhooks = CounterMetricFamily("renderq_webhook_deliveries", "Webhook deliveries by outcome.", labels=["outcome"])
        delivered = client.hgetall(metrics.WEBHOOKS)
        for outcome in sorted(set(delivered) | {"delivered", "gave-up"}):  # 0 until webhooks are sent
            webhooks.add_metric([outcome], float(delivered.get(outcome, 0)))
        yield webhooks

        window = max(30.0, settings.heartbeat_stale_after * 3)
        workers = GaugeMetricFamily("renderq_workers", f"Workers seen in the last {window:.0f} seconds.")
        workers.add_metric([], metrics.live_workers(client, window))
        yield workers

        yield from pool_families(client, pools, window)

        gpu = GaugeMetricFamily("renderq_gpu_memory_bytes", "GPU memory of each worker after its last run.", labels=["worker", "kind"])
        for worker_id, data in metrics.gpu_memory(client, window * 10).items():
            gpu.add_metric([worker_id, "allocated"], data["allocated"])
            gpu.add_metric([worker_id, "reserved"], data["reserved"])
        yield gpu


def pool_families(client: redis.Redis, pools: list[str], window: float):
    """Per worker pool: runs queued and running, workers idle and busy, the oldest queued run's
    age, the measured seconds per denoising step per size (what its estimates use), and the
    model loads of each of its workers."""
    queued = GaugeMetricFamily("renderq_pool_runs_queued", "Runs queued for each worker pool.", labels=["pool"])
    running = GaugeMetricFamily("renderq_pool_runs_running", "Runs each worker pool renders now.", labels=["pool"])
    workers = GaugeMetricFamily("renderq_pool_workers", f"Workers of each pool seen in the last {window:.0f} seconds, "
                                "idle or busy.", labels=["pool", "state"])
    oldest = GaugeMetricFamily("renderq_pool_oldest_queued_seconds", "Age of each pool's oldest queued run (0: none).",
                               labels=["pool"])
    step = GaugeMetricFamily("renderq_pool_step_seconds", "Measured seconds of one denoising step of one image, per "
                             "pool and size (the render rate its estimates use).", labels=["pool", "size"])
    for health in read_pools(client, pools, window):
        queued.add_metric([health.pool], health.queued)
        running.add_metric([health.pool], health.running)
        workers.add_metric([health.pool, "idle"], health.idle)
        workers.add_metric([health.pool, "busy"], health.busy)
        oldest.add_metric([health.pool], health.oldest_queued_seconds or 0.0)
        for size, seconds in sorted(client.hgetall(pool_key(STEP_SECONDS, health.pool)).items()):
            step.add_metric([health.pool, size], float(seconds))
    yield from (queued, running, workers, oldest, step)
    loads = CounterMetricFamily("renderq_model_loads", "Models loaded, per pool, worker (render process) and model.",
                                labels=["pool", "worker", "model"])
    for (pool, worker, model), count in sorted(metrics.model_loads(client).items()):
        loads.add_metric([pool, worker, model], float(count))
    yield loads


@router.get(
    "/metrics", summary="Prometheus metrics of the whole service (all workers and API processes)", response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format"}},
)
def prometheus_metrics(services: Services = Depends(get_services)) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(services))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
