"""Prometheus metrics of one app, in a registry of its own (several apps in one process never collide)."""

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..errors import MedragError
from ..jobs import Job
from ..service import Service
from ..types import Answer

# Seconds; a question takes tens of milliseconds to a few seconds with the real model, an LLM up to a minute.
LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_SECONDS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    """The counters and histograms the middleware and the service feed; `Service.observers` holds one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medrag_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medrag_http_request_duration_seconds",
            "Time to the end of the response, by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY,
            registry=self.registry,
        )
        self.answers = Counter(
            "medrag_answers", "Questions answered, by outcome: found or refused.", ["outcome"], registry=self.registry
        )
        self.stages = Histogram(
            "medrag_answer_stage_seconds",
            "Time per stage of an answer (rewrite, analyse, embed, retrieve, answer, total).",
            ["stage"],
            buckets=LATENCY,
            registry=self.registry,
        )
        self.jobs = Counter(
            "medrag_jobs_finished", "Write jobs finished, by kind and state.", ["kind", "state"], registry=self.registry
        )
        self.job_seconds = Histogram(
            "medrag_job_duration_seconds",
            "Time a write job ran (from start to finish), by kind and state.",
            ["kind", "state"],
            buckets=JOB_SECONDS,
            registry=self.registry,
        )
        self.job_wait = Histogram(
            "medrag_job_queued_seconds",
            "Time a write job waited in the queue before it ran.",
            buckets=JOB_SECONDS,
            registry=self.registry,
        )
        for outcome in ("found", "refused"):
            self.answers.labels(outcome)  # both series exist from the start, at 0

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method, str(status)).observe(seconds)

    # Observer (service.py)

    def answered(self, answer: Answer) -> None:
        self.answers.labels("found" if answer.found else "refused").inc()
        for stage, milliseconds in answer.timings_ms.items():
            self.stages.labels(stage).observe(milliseconds / 1000)

    def job_finished(self, job: Job) -> None:
        self.jobs.labels(job.kind, job.state).inc()
        if job.started_at is not None and job.finished_at is not None:
            self.job_seconds.labels(job.kind, job.state).observe(job.finished_at - job.started_at)
            self.job_wait.observe(job.started_at - job.created_at)


class ServiceCollector(Collector):
    """What is read from the service at each scrape: jobs by state, the live version and its chunks."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        service: Service | None = getattr(self.app.state, "service", None)
        if service is None:  # before the lifespan has built it
            return
        jobs = GaugeMetricFamily("medrag_jobs", "Write jobs held by the service, by state.", labels=["state"])
        for state, count in service.job_states().items():
            jobs.add_metric([state], count)
        yield jobs
        try:
            index = service.load()
        except MedragError:
            up = GaugeMetricFamily("medrag_index_loaded", "1 when a live index version is served, else 0.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("medrag_index_loaded", "1 when a live index version is served, else 0.")
        up.add_metric([], 1)
        yield up
        info = GaugeMetricFamily(
            "medrag_index_version_info", "The live index version (always 1).", labels=["version", "model_id"]
        )
        info.add_metric([index.version, index.manifest.model_id], 1)
        yield info
        chunks = GaugeMetricFamily("medrag_index_chunks", "Chunks in the live index version.")
        chunks.add_metric([], index.manifest.chunks)
        yield chunks


def install(app: FastAPI, metrics: Metrics) -> None:
    """`GET /metrics`, and the service's gauges read at each scrape."""
    metrics.registry.register(ServiceCollector(app))

    @app.get("/metrics", tags=["service"], response_class=Response)
    def prometheus_metrics(request: Request) -> Response:
        """Counters, histograms and gauges in the Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
