"""What the authenticated registry needs around it: a CA and server certificate for TLS, an htpasswd file, and a
Docker token server (the spec's `GET realm?service=&scope=` with Basic credentials, ES256 JWTs the registry checks
against a JWKS file). The registry is real (CNCF distribution); only its token issuer is written here."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():  # bcrypt via libxcrypt; deprecated, but present on the Python 3.11 this repo pins
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

SERVICE, ISSUER, KID = "bmfleet-test-registry", "bmfleet-test-issuer", "bmfleet-test-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1, signed by a throwaway CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmfleet test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    path.write_text(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    return path


class TokenServer:
    """Issues tokens for `user`/`password` (only pull for `reader`), counts requests, records what it was asked."""

    def __init__(self, directory: Path, users: dict[str, str], tls: tuple[Path, Path, Path]) -> None:
        self.users = users
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "kid": KID, "alg": "ES256", "use": "sig"}
        jwk |= {"x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [jwk]}))
        self.requests: list[dict[str, str]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[1], tls[2])
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.realm = f"https://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def sign(self, claims: dict[str, object]) -> str:
        head = _b64(json.dumps({"typ": "JWT", "alg": "ES256", "kid": KID}).encode())
        body = _b64(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
        return f"{head}.{body}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def issue(self, user: str, scope: str) -> str:
        kind, name, actions = scope.split(":")
        granted = [a for a in actions.split(",") if a == "pull" or user != "reader"]
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 5, "iat": now}
        claims |= {"jti": uuid.uuid4().hex, "access": [{"type": kind, "name": name, "actions": granted}]}
        return self.sign(claims)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                server.requests.append(query)
                user, _, password = (
                    base64.b64decode((self.headers.get("Authorization") or "Basic ").removeprefix("Basic "))
                    .decode()
                    .partition(":")
                )
                if not user or server.users.get(user) != password or query.get("service") != SERVICE:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.issue(user, query.get("scope", "")), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def registry_config(
    directory: Path, port: int, tls: tuple[Path, Path, Path], auth: Mapping[str, object], storage: object = None
) -> Path:
    """A distribution config: TLS on loopback, the given auth section, filesystem storage unless given another."""
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": storage or {"filesystem": {"rootdirectory": str(directory / "data")}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": uuid.uuid4().hex,
            "tls": {"certificate": str(tls[1]), "key": str(tls[2])},
        },
        "auth": dict(auth),
    }
    path = directory / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path
