"""The simulated fleet: kwok-managed nodes with BM1684/BM1684X TPUs, plus one plain CPU node.

All nodes say ``kubernetes.io/arch=amd64``: they model PCIe accelerator cards (SC5-style) in x86 hosts, so
Job images need no arm64 variant. Nodes carry no kwok taint, so unmodified Job pods schedule onto them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kubernetes import client

from bmfleet.sandbox.components import KWOK_NODE_ANNOTATION

CHIP_LABEL = "sophgo.com/chip"
TPU_RESOURCE = "sophgo.com/tpu"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    chip: str | None = None
    tpus: int = 0
    cpu: str = "8"
    memory: str = "16Gi"
    pods: str = "110"
    extra_labels: dict[str, str] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.extra_labels,
        }
        if self.chip:
            labels[CHIP_LABEL] = self.chip
        return labels

    def capacity(self) -> dict[str, str]:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods}
        if self.tpus:
            capacity[TPU_RESOURCE] = str(self.tpus)
        return capacity

    def to_node(self) -> client.V1Node:
        """Status is set on create: kwok's node-initialize keeps given capacity/allocatable."""
        return client.V1Node(
            api_version="v1",
            kind="Node",
            metadata=client.V1ObjectMeta(
                name=self.name,
                labels=self.labels(),
                annotations={KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            ),
            spec=client.V1NodeSpec(),
            status=client.V1NodeStatus(capacity=self.capacity(), allocatable=self.capacity()),
        )


FLEET: tuple[NodeSpec, ...] = (
    NodeSpec("bm1684-0", chip="bm1684", tpus=4),
    NodeSpec("bm1684-1", chip="bm1684", tpus=4),
    NodeSpec("bm1684x-0", chip="bm1684x", tpus=4),
    NodeSpec("cpu-0"),
)


def create_nodes(api: client.ApiClient, specs: tuple[NodeSpec, ...] = FLEET) -> None:
    core = client.CoreV1Api(api)
    for spec in specs:
        core.create_node(spec.to_node())


def node_schedulable(node: client.V1Node) -> bool:
    """Ready=True and the not-ready taint (added at admission, removed by KCM) is gone."""
    conditions = (node.status.conditions if node.status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = (node.spec.taints if node.spec else None) or []
    return ready and not any(t.key == NOT_READY_TAINT for t in taints)


def wait_nodes_ready(api: client.ApiClient, names: list[str], timeout: float) -> None:
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        ready = {n.metadata.name for n in core.list_node().items if n.metadata and node_schedulable(n)}
        pending = set(names) - ready
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not Ready/untainted after {timeout:.0f}s: {sorted(pending)}")
        time.sleep(0.5)
