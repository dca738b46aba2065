"""Encryption at rest for the device secrets a protocol needs in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from gateway.config import Settings


class SecretBox:
    def __init__(self, key_material: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_material).digest()))
        self._mac_key = hashlib.sha256(b"pin digest\0" + key_material).digest()

    def digest(self, secret: str) -> str:
        """A keyed one-way digest: what is stored of a PIN, so a stolen database does not give PINs away."""
        return hmac.new(self._mac_key, secret.encode(), hashlib.sha256).hexdigest()

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt: [security] secret_key differs from the one that sealed it") from None


def key_file(settings: Settings) -> Path:
    url = make_url(settings.database.url.get_secret_value())
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "secret.key"
    return Path("secret.key")


def load(settings: Settings) -> SecretBox:
    configured = settings.security.secret_key.get_secret_value()
    if configured:
        return SecretBox(configured.encode())
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return SecretBox(path.read_text().strip().encode())
