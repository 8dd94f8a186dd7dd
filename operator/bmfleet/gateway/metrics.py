"""Prometheus metrics of one gateway, in their own registry (several gateways can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bmfleet_gateway_requests", "Device-facing requests by route and status code", ["route", "code"], registry=r
        )
        self.longpolls = Gauge("bmfleet_gateway_longpolls_in_flight", "Desired-state long polls being held", registry=r)
        self.connections = Gauge("bmfleet_gateway_connections", "Open client connections", registry=r)
        self.bytes_served = Counter("bmfleet_gateway_blob_bytes_served", "Blob body bytes sent to devices", registry=r)
        self.reports = Counter("bmfleet_gateway_status_reports", "Status reports received from devices", registry=r)
        self.batches = Counter("bmfleet_gateway_status_batches", "Batched status flushes", registry=r)
        self.pending = Gauge("bmfleet_gateway_status_pending", "Devices with a status write waiting", registry=r)
        self.flush_seconds = Histogram(
            "bmfleet_gateway_status_flush_seconds", "Duration of one status flush (all its patches)", registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.writes = Counter(
            "bmfleet_gateway_status_writes", "Status patches sent to the API server by result", ["result"], registry=r
        )
        self.registrations = Counter(
            "bmfleet_gateway_registrations", "Registration attempts by result", ["result"], registry=r
        )
        self.api_requests = Counter(
            "bmfleet_gateway_api_requests", "Requests to the Kubernetes API server by verb", ["verb"], registry=r
        )
        self.devices = Gauge("bmfleet_gateway_devices", "EdgeDevices in the gateway's view", registry=r)
        self.relists = Counter("bmfleet_gateway_watch_relists", "Full lists of EdgeDevices (start and 410)", registry=r)
        self.blob_fetches = Counter(
            "bmfleet_gateway_blob_fetches", "Blobs fetched from a remote store into the cache", ["result"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
