"""Prometheus metrics of the collector (prometheus_client, one registry per process)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters the request path updates; gauges filled from the loader at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("demandloop_events_total", "Events by outcome at the edge",
                              ["outcome"], registry=r)
        self.requests = Counter("demandloop_requests_total", "Ingestion requests by status",
                                ["status"], registry=r)
        self.latency = Histogram("demandloop_request_seconds", "Ingestion request latency",
                                 buckets=BUCKETS, registry=r)
        self.backlog = Gauge("demandloop_log_backlog_bytes",
                             "Durable log bytes not yet loaded into the store", registry=r)
        self.loaded = Gauge("demandloop_events_loaded", "Events the loader stored",
                            registry=r)
        self.deduplicated = Gauge("demandloop_events_deduplicated",
                                  "Events the loader dropped as already stored (messageId)",
                                  registry=r)
        self.dead = Gauge("demandloop_events_dead_lettered",
                          "Events the loader could not store (kept in dead-letter.jsonl)",
                          registry=r)
        self.loader_up = Gauge("demandloop_loader_up", "1 while the loader thread runs "
                               "and makes progress, else 0", registry=r)
        self.loader_restarts = Gauge("demandloop_loader_restarts",
                                     "Times the loader thread died and was restarted",
                                     registry=r)
        self.heartbeat_age = Gauge("demandloop_loader_heartbeat_age_seconds",
                                   "Seconds since the loader last made progress", registry=r)
        # the live loop (resolve, score, workflows after loads; see serve.run._hooks)
        self.loop_seconds = Gauge("demandloop_loop_seconds",
                                  "How long the live loop's last run took", registry=r)
        self.loop_rest = Gauge("demandloop_loop_rest_seconds",
                               "The rest the live loop took after its last run (twice the "
                               "run when requests were answered meanwhile)", registry=r)
        self.loop_last = Gauge("demandloop_loop_last_run_timestamp_seconds",
                               "When the live loop last finished a run (Unix time)",
                               registry=r)
        self.loop_steps = Gauge("demandloop_loop_step_seconds",
                                "How long each step of the live loop's last run took",
                                ["step"], registry=r)
        self.rescores = Gauge("demandloop_live_rescores",
                              "Scores the live loop ran since the server started, by mode "
                              "(full: it could not rescore only what changed)", ["mode"],
                              registry=r)
        self.recomputed = Gauge("demandloop_rescore_accounts_recomputed",
                                "Accounts the live loop's last score recomputed (all of "
                                "them for a full score)", registry=r)
        self.decide_requests = Counter("demandloop_decide_requests_total",
                                       "Personalisation decisions (/v1/decide) by status",
                                       ["status"], registry=r)
        self.decide_latency = Histogram("demandloop_decide_seconds",
                                        "Personalisation decision latency (/v1/decide)",
                                        buckets=BUCKETS, registry=r)
        self._by_status: dict[int, Counter] = {}
        self._decide_by_status: dict[int, Counter] = {}
        self._accepted = self.events.labels("accepted")
        self._rejected = self.events.labels("rejected")

    def accepted(self, workspace: str, n: int) -> None:
        self._accepted.inc(n)

    def rejected(self, status: int, n: int) -> None:
        self._rejected.inc(n)

    def observe(self, seconds: float, status: int) -> None:
        self.latency.observe(seconds)
        child = self._by_status.get(status)
        if child is None:  # labels() costs a lookup and a lock: keep each child
            child = self._by_status[status] = self.requests.labels(str(status))
        child.inc()

    def decided(self, seconds: float, status: int) -> None:
        """One ``/v1/decide`` answer (kept apart from ingestion's figures)."""
        self.decide_latency.observe(seconds)
        child = self._decide_by_status.get(status)
        if child is None:
            child = self._decide_by_status[status] = self.decide_requests.labels(str(status))
        child.inc()

    def render(self, backlog: int, loader: dict[str, Any], up: bool = True) -> bytes:
        self.backlog.set(backlog)
        self.loader_up.set(1 if up else 0)
        self.loader_restarts.set(loader.get("restarts", 0))
        self.heartbeat_age.set(max(time.time() - float(loader.get("heartbeat", 0)), 0.0)
                               if loader else 0.0)
        self.loaded.set(loader.get("loaded", 0))
        self.deduplicated.set(loader.get("deduplicated", 0))
        self.dead.set(loader.get("dead_lettered", 0))
        self._loop(loader)
        return generate_latest(self.registry)

    def _loop(self, loader: dict[str, Any]) -> None:
        """The live loop's figures, from the loader's status (0, and no series by step or
        mode, until its first run)."""
        if "maintenance_seconds" in loader:
            self.loop_seconds.set(loader["maintenance_seconds"])
            self.loop_rest.set(loader.get("rest_seconds", 0.0))
        if loader.get("maintained_at"):
            self.loop_last.set(loader["maintained_at"])
        figures = loader.get("maintenance")
        if not isinstance(figures, dict):
            return
        for step in ("resolve", "score"):
            if f"{step}_seconds" in figures:
                self.loop_steps.labels(step).set(figures[f"{step}_seconds"])
        for mode, n in (figures.get("rescores") or {}).items():
            self.rescores.labels(mode).set(n)
        if "recomputed" in figures:
            self.recomputed.set(figures["recomputed"])
