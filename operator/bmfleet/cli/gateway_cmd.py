"""``bmfleet gateway``: the device-facing HTTPS service (docs/gateway-protocol.md) for one namespace."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from bmfleet.gateway.config import GatewayConfig, parse_listen
    from bmfleet.gateway.runner import run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        print("bmfleet gateway: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if not args.tls_cert and not args.insecure_http:
        print("bmfleet gateway: give --tls-cert/--tls-key (or --insecure-http behind a TLS proxy)", file=sys.stderr)
        return 2
    try:
        cfg = GatewayConfig(
            namespace=args.namespace,
            bootstrap_secret=args.bootstrap_secret,
            bootstrap_key=args.bootstrap_secret_key,
            listen=parse_listen(args.listen),
            admin_listen=parse_listen(args.admin_listen) if args.admin_listen else None,
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
            store_uris=args.store_uri,
            pvc_root=Path(args.pvc_root),
            cache_dir=Path(args.cache_dir),
            store_credentials=Path(args.store_credentials) if args.store_credentials else None,
            store_ca_bundle=Path(args.store_ca_bundle) if args.store_ca_bundle else None,
            kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
            max_poll_wait=args.max_poll_wait,
            rotation_grace=args.rotation_grace,
            heartbeat=args.heartbeat,
            last_seen_interval=args.last_seen_interval,
            batch_interval=args.batch_interval,
            batch_max=args.batch_max,
            write_concurrency=args.write_concurrency,
        )
    except ValueError as e:
        print(f"bmfleet gateway: {e}", file=sys.stderr)
        return 2
    return run(cfg)


PVC_ROOT = "/run/bmfleet/store"  # bmfleet.pipeline.pods.STORE_DIR (a unit test keeps them equal)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `bmfleet gateway`; its code is imported only when it runs (pipeline.pods would load pydantic)."""
    s = sub.add_parser("gateway", help="serve devices: desired state, status, blobs (HTTPS)")
    s.add_argument("--listen", default="0.0.0.0:8443", help="device port, host:port")
    s.add_argument("--admin-listen", default="0.0.0.0:8081", help="plain HTTP /healthz /readyz /metrics; '' off")
    s.add_argument("--tls-cert", help="PEM certificate chain for the device port")
    s.add_argument("--tls-key", help="PEM private key")
    s.add_argument("--insecure-http", action="store_true", help="serve devices without TLS (behind a TLS proxy)")
    s.add_argument("--namespace", "-n", required=True, help="namespace of the EdgeDevices (and the Secret)")
    s.add_argument("--bootstrap-secret", required=True, help="Secret holding the registration token")
    s.add_argument("--bootstrap-secret-key", default="token", help="key in that Secret (default: token)")
    s.add_argument(
        "--store-uri", action="append", default=[], help="a store blobs may be served from (repeatable), e.g. "
        "pvc://claim/prefix, file:///dir, oci://host/repo, s3://bucket/prefix; default: any pvc:// claim",
    )  # fmt: skip
    s.add_argument("--pvc-root", default=PVC_ROOT, help="where pvc:// claims are mounted (<root>/<claim>)")
    s.add_argument("--cache-dir", default="/run/bmfleet/cache", help="cache for blobs from oci:// and s3:// stores")
    s.add_argument("--store-credentials", help="JSON file or Secret volume with oci/s3 credentials")
    s.add_argument("--store-ca-bundle", help="CA bundle for the oci/s3 stores")
    s.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG")
    s.add_argument("--max-poll-wait", type=int, default=30, help="cap on a long poll's wait (s)")
    s.add_argument("--rotation-grace", type=float, default=7 * 86400, help="old credential valid after rotate (s)")
    s.add_argument("--heartbeat", type=float, default=60, help="agents' heartbeat (s); Online=False after 3x")
    s.add_argument(
        "--last-seen-interval", type=float, default=120,
        help="refresh status.lastSeen at most this often (s, at most 2x heartbeat): a write per device per interval",
    )  # fmt: skip
    s.add_argument("--batch-interval", type=float, default=1.0, help="status flush interval (s)")
    s.add_argument("--batch-max", type=int, default=500, help="flush early when this many devices wait")
    s.add_argument("--write-concurrency", type=int, default=8, help="status patches in flight per flush")
    s.add_argument("--verbose", "-v", action="store_true")
    s.set_defaults(func=_run)
