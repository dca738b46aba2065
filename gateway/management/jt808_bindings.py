"""Which JT/T 808 terminal holds a device's binding, and the binding's auth code, kept only as a hash.

A jt808 device is unbound or bound:

- unbound: `credential_hash` is empty; `secret_enc` may hold, sealed with the
  site key, the code answered at creation or rotation, waiting for the first
  binding to hand it out (so the code shown once is the code the terminal gets).
- bound: `credential_hash` holds the code's salted hash and `secret_enc` is
  empty: the code exists nowhere in clear and is never handed out again.

A registration while unbound binds: it takes the waiting code, or a fresh one
when none waits, and keeps only its hash. A terminal given the waiting code by
hand binds by authenticating with it. Unbinding (an installer's action or the
terminal's own 0x0003) empties both, so the old code stops working and the
next registration binds with a fresh code. Each change writes an audit entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from sqlalchemy import Engine, update
from sqlmodel import Session, col

from gateway.auth import audit
from gateway.auth.secretbox import SecretBox
from gateway.core.timeutil import now_ms
from gateway.store.models import Device

PROTOCOL = "jt808"
# The codes are 16 random letters and digits (95 bits), so a salted SHA-256 is enough; a slow hash would make
# every authentication attempt cost tens of milliseconds. Its own scheme name also keeps the hash from ever
# passing as an MQTT password hash (those are scrypt).
_SCHEME = "jt808-sha256"


def new_code() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))


def hash_code(code: str) -> str:
    salt = secrets.token_bytes(16)
    return f"{_SCHEME}${salt.hex()}${hashlib.sha256(salt + code.encode()).hexdigest()}"


def code_matches(code: str, stored: str | None) -> bool:
    try:
        scheme, salt, digest = (stored or "").split("$")
        expected = hashlib.sha256(bytes.fromhex(salt) + code.encode()).hexdigest()
    except ValueError:
        return False
    return scheme == _SCHEME and hmac.compare_digest(expected, digest)


def forget(device: Device) -> bool:
    """Unbind `device` (not yet committed); whether it had a binding or a waiting code to forget."""
    had = bool(device.credential_hash or device.secret_enc)
    device.credential_hash = device.secret_enc = None
    device.updated_at = now_ms()
    return had


class Jt808Bindings:
    """What the JT/T 808 server asks of the database; each call is blocking (run it in a thread)."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    def bind(self, device_id: str, actor: str) -> str | None:
        """Bind the terminal if it is unbound: the code it is given; None if it is bound already."""
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            if device is None or device.protocol != PROTOCOL or device.credential_hash:
                return None
            code = self.box.open(device.secret_enc) if device.secret_enc else new_code()
            return code if self._bind(session, device, code, actor) else None

    def check(self, device_id: str, code: str, actor: str) -> bool:
        """Whether `code` is the binding's; the code waiting for an unbound terminal binds it."""
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            if device is None or device.protocol != PROTOCOL:
                return False
            if device.credential_hash:
                return code_matches(code, device.credential_hash)
            waiting = self.box.open(device.secret_enc) if device.secret_enc else None
            if waiting is None or not hmac.compare_digest(code.encode(), waiting.encode()):
                return False
            return self._bind(session, device, code, actor)

    def unbind(self, device_id: str, actor: str) -> None:
        """The terminal deregistered (0x0003) on its authenticated connection."""
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            if device is not None and device.protocol == PROTOCOL and forget(device):
                session.add(device)
                audit.record(session, actor, "unbind", "device", device_id, None, {"by": "deregistration"})
                session.commit()

    def _bind(self, session: Session, device: Device, code: str, actor: str) -> bool:
        # Only if nobody bound it meanwhile: of two terminals registering at once, one wins.
        done = session.execute(
            update(Device)
            .where(
                col(Device.id) == device.id,
                col(Device.credential_hash).is_(None),
                col(Device.secret_enc).is_(None)
                if device.secret_enc is None
                else col(Device.secret_enc) == device.secret_enc,
            )
            .values(credential_hash=hash_code(code), secret_enc=None, updated_at=now_ms())
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return False
        audit.record(session, actor, "bind", "device", device.id)
        session.commit()
        return True
