"""Store tier: real servers on loopback, built by hack/build-oci-tools.sh — `crane registry serve` (plain OCI
registry), CNCF distribution (TLS + htpasswd or token auth), versitygw (S3, posix backend) — and the oras CLI."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.store.auth_servers import ISSUER, SERVICE, TokenServer, registry_config, write_htpasswd, write_tls
from tests.store.servers import (
    BUILD_HINT,
    S3_ACCESS,
    S3_BUCKET,
    S3_SECRET,
    TOOLS,
    USERS,
    CuttingProxy,
    Server,
    find_tools,
    free_port,
    http_status,
)


@pytest.fixture(scope="session")
def tools() -> Path:
    bin_dir = find_tools()
    missing = [t for t in TOOLS if not bin_dir or not (bin_dir / t).is_file()]
    if missing:
        pytest.skip(f"store test servers not built ({', '.join(missing)} missing): {BUILD_HINT}")
    assert bin_dir is not None
    return bin_dir


def crane_server(tools: Path, state: Path) -> Server:
    port = free_port()
    (state / "blobs").mkdir()
    argv = [str(tools / "crane"), "registry", "serve", "--address", f"127.0.0.1:{port}", "--disk", str(state / "blobs")]
    return Server(
        "crane registry", argv, port, state / "crane.log", lambda: http_status(f"http://127.0.0.1:{port}/v2/") == 200
    )


@contextmanager
def own_crane(state: Path) -> Iterator[tuple[Server, Path]]:
    """A `crane registry serve` of the caller's own over `state` (and the tools directory); skips the test when
    crane is not built. For tiers whose tests may stop and restart it (blobs stay on disk, same port)."""
    tools = find_tools()
    if tools is None or not (tools / "crane").is_file():
        pytest.skip(f"crane not built: {BUILD_HINT}")
    state.mkdir(exist_ok=True)
    server = crane_server(tools, state).start()
    try:
        yield server, tools
    finally:
        server.stop()


@pytest.fixture(scope="session")
def crane(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = crane_server(tools, tmp_path_factory.mktemp("crane")).start()
    yield server
    server.stop()


@pytest.fixture
def crane_fresh(tools: Path, tmp_path: Path) -> Iterator[Server]:
    """A registry of the test's own, for tests that stop and restart it."""
    server = crane_server(tools, tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oras(tools: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(tools / "oras"), *args], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"oras {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    return run


def versitygw_server(tools: Path, state: Path) -> tuple[Server, Path]:
    """versitygw over a directory (bucket S3_BUCKET made); the posix backend serves each top-level directory as
    a bucket. Returns the server (not started) and its data directory."""
    (state / "data" / S3_BUCKET).mkdir(parents=True)
    port = free_port()
    argv = [str(tools / "versitygw"), "--access", S3_ACCESS, "--secret", S3_SECRET, "--port", f"127.0.0.1:{port}"]
    argv += ["posix", str(state / "data")]
    server = Server(
        "versitygw", argv, port, state / "versitygw.log", lambda: http_status(f"http://127.0.0.1:{port}/") == 403
    )
    return server, state / "data"


@pytest.fixture(scope="session")
def s3(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    server, data = versitygw_server(tools, tmp_path_factory.mktemp("s3"))
    server.start()
    yield server, data
    server.stop()


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_tls(tmp_path_factory.mktemp("tls"))


def _distribution(
    tools: Path, state: Path, tls: tuple[Path, Path, Path], auth: Mapping[str, object], storage: object = None
) -> Server:
    port = free_port()
    config = registry_config(state, port, tls, auth, storage)
    context = ssl.create_default_context(cafile=str(tls[0]))
    return Server(
        "distribution registry",
        [str(tools / "registry"), "serve", str(config)],
        port,
        state / "registry.log",
        lambda: http_status(f"https://127.0.0.1:{port}/v2/", context) == 401,
    ).start()


@pytest.fixture(scope="session")
def token_auth(
    tools: Path, tls: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, TokenServer]]:
    state = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(state, USERS, tls)
    token = {"realm": tokens.realm, "service": SERVICE, "issuer": ISSUER, "jwks": str(tokens.jwks)}
    server = _distribution(tools, state, tls, {"token": token})
    yield server, tokens
    server.stop()
    tokens.close()


@pytest.fixture(scope="session")
def basic_auth(tools: Path, tls: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("htpasswd-registry")
    htpasswd = write_htpasswd(state / "htpasswd", "builder", USERS["builder"])
    server = _distribution(tools, state, tls, {"htpasswd": {"realm": "bmfleet-test", "path": str(htpasswd)}})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redirecting_registry(
    tools: Path, tls: tuple[Path, Path, Path], s3: tuple[Server, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, CuttingProxy]]:
    """Token auth, TLS, and blobs in S3 (versitygw, seen through a proxy that records requests): blob GETs are
    answered with a redirect to a presigned S3 URL, as registries backed by object storage do."""
    s3_server, data = s3
    (data / "registry-storage").mkdir()
    proxy = CuttingProxy(s3_server.port)
    state = tmp_path_factory.mktemp("s3-registry")
    tokens = TokenServer(state, USERS, tls)
    token = {"realm": tokens.realm, "service": SERVICE, "issuer": ISSUER, "jwks": str(tokens.jwks)}
    storage = {
        "s3": {
            "region": "us-east-1",
            "regionendpoint": f"http://127.0.0.1:{proxy.port}",
            "forcepathstyle": True,
            "bucket": "registry-storage",
            "accesskey": S3_ACCESS,
            "secretkey": S3_SECRET,
            "secure": False,
        },
        "redirect": {"disable": False},
    }
    server = _distribution(tools, state, tls, {"token": token}, storage)
    yield server, proxy
    server.stop()
    tokens.close()
    proxy.close()
