"""bmfleet.gateway: the device-facing HTTPS service (docs/gateway-protocol.md).

Devices never reach the Kubernetes API; the gateway is their only contact. Every replica keeps an in-memory view of
its namespace's EdgeDevices from one watch, answers long polls, serves blobs by digest and writes status back in
batches: stateless, so it scales by replicas.
"""
