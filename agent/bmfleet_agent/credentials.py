"""The device credential: the one secret on the box, so it lives in a 0600 file replaced atomically.

A rotation writes the new token before using it; if the box dies in between, the old token still works for
the gateway's grace period and the next start simply rotates again.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple, Optional

from bmfleet_agent import fsutil

FILE = "credential.json"
MODE = 0o600


class Credential(NamedTuple):
    device_id: str
    token: str
    issued_at: float


def path(state_dir: str) -> str:
    return os.path.join(state_dir, FILE)


def load(state_dir: str) -> Optional[Credential]:
    try:
        with open(path(state_dir), "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
        return Credential(str(doc["deviceId"]), str(doc["token"]), float(doc.get("issuedAt", 0)))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: register again with the bootstrap token


def save(state_dir: str, cred: Credential) -> None:
    doc = {"deviceId": cred.device_id, "token": cred.token, "issuedAt": cred.issued_at}
    fsutil.atomic_write(path(state_dir), json.dumps(doc).encode("utf-8"), mode=MODE)
