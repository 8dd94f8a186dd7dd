"""Registry credentials and the distribution auth flow (Basic, or Bearer tokens from the realm a 401 names).

Credentials come the way clusters hold them: a `kubernetes.io/dockerconfigjson` Secret (`.dockerconfigjson`, or
its parsed `auths` map) or plain username/password. Tokens are cached per scope until shortly before they
expire. Nothing here logs or raises with a secret in it: `RegistryCredentials` hides its fields from repr.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from bmfleet.store._http import Transport, is_loopback, safe_url
from bmfleet.store.base import StoreError

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class RegistryCredentials:
    """What one registry accepts: username/password, an identity (refresh) token, or a ready bearer token."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)


def credentials_for(registry: str, secret: Mapping[str, object] | None) -> RegistryCredentials | None:
    """Pick the entry for `registry` out of a docker-config-style dict (or take username/password as given)."""
    if not secret:
        return None
    if ".dockerconfigjson" in secret:
        raw = secret[".dockerconfigjson"]
        secret = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        if not isinstance(secret, dict):
            raise StoreError(".dockerconfigjson is not a JSON object")
    auths = secret.get("auths")
    if isinstance(auths, Mapping):
        entry = _match(registry, auths)
        return _entry(entry) if isinstance(entry, Mapping) else None
    return _entry(secret)


def _match(registry: str, auths: Mapping[str, object]) -> object:
    keys = DOCKER_HUB_KEYS if registry in DOCKER_HUB_KEYS else (registry,)
    for key, entry in auths.items():
        host = urlsplit(key).netloc if "://" in key else key.split("/")[0]
        if host in keys or key in keys:
            return entry
    return None


def _entry(entry: Mapping[str, object]) -> RegistryCredentials:
    def get(*names: str) -> str | None:
        for name in names:
            value = entry.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    username, password = get("username"), get("password")
    if (auth := get("auth")) and not username:
        try:
            username, _, password = base64.b64decode(auth).decode().partition(":")
        except ValueError:
            raise StoreError("registry credentials: 'auth' is not base64 of user:password") from None
    return RegistryCredentials(
        username, password, get("identitytoken", "identityToken"), get("registrytoken", "registryToken")
    )


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` → ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()}


class Authenticator:
    """Answers 401 challenges for one registry and remembers the Authorization to send per scope."""

    def __init__(self, transport: Transport, credentials: RegistryCredentials | None, *, tls: bool = True) -> None:
        self._transport, self._creds, self._tls = transport, credentials, tls
        self._basic: str | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        if credentials and credentials.registry_token:
            self._basic = f"Bearer {credentials.registry_token}"

    def header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        return {"Authorization": self._basic} if self._basic else {}

    def challenge(self, www_authenticate: str | None, scope: str) -> bool:
        """Prepare credentials for a retry of the refused request; False when there is nothing new to try."""
        scheme, params = parse_challenge(www_authenticate or "")
        creds = self._creds
        if scheme == "basic":
            if not (creds and creds.username and creds.password) or self._basic:
                return False
            self._basic = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return True
        if scheme == "bearer" and params.get("realm"):
            token, expires_in = self._fetch_token(params, scope)
            self._tokens[scope] = (token, time.monotonic() + max(expires_in - 30, 10))
            return True
        return False

    def _fetch_token(self, params: dict[str, str], scope: str) -> tuple[str, int]:
        realm = params["realm"]
        parts = urlsplit(realm)
        # No downgrade: a registry reached over TLS gets its tokens over TLS; plain http only on loopback.
        plain_ok = not self._tls and is_loopback(parts.hostname or "")
        if parts.scheme != "https" and not (parts.scheme == "http" and plain_ok):
            raise StoreError(f"refusing to send registry credentials to {safe_url(realm)} (not https)")
        query = {"service": params.get("service", ""), "scope": scope}
        creds = self._creds
        if creds and creds.identity_token:
            form = urlencode(query | {"grant_type": "refresh_token", "refresh_token": creds.identity_token})
            form += "&client_id=bmfleet"
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            reply = self._transport.call("POST", realm, headers, form.encode())
        else:
            headers = {}
            if creds and creds.username and creds.password:
                basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
                headers["Authorization"] = f"Basic {basic}"
            sep = "&" if parts.query else "?"
            reply = self._transport.call("GET", f"{realm}{sep}{urlencode(query)}", headers)
        if reply.status != 200:
            raise StoreError(f"token request to {safe_url(realm)} refused: HTTP {reply.status}")
        try:
            doc = json.loads(reply.body)
            token = doc.get("token") or doc.get("access_token")
            expires_in = int(doc.get("expires_in") or 60)
        except (ValueError, AttributeError):
            raise StoreError(f"token response from {safe_url(realm)} is not JSON") from None
        if not isinstance(token, str) or not token:
            raise StoreError(f"token response from {safe_url(realm)} has no token")
        return token, expires_in
