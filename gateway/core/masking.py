"""Secrets for display: what `gateway config check` prints and what errors may echo."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr


def masked(settings: BaseModel) -> dict[str, Any]:
    """The effective settings for display: secrets shown as ******** when set, and in every URL the
    password and secret-looking query values masked."""
    plain = settings.model_dump(mode="json")

    def walk(node: Any, model: Any) -> Any:
        if isinstance(model, BaseModel):
            out = {}
            for name, value in node.items():
                attr = getattr(model, name)
                if isinstance(attr, SecretStr):
                    secret = attr.get_secret_value()
                    out[name] = mask_url(secret) if name == "url" else ("********" if secret else "")
                else:
                    out[name] = walk(value, attr)
            return out
        if isinstance(model, list):
            return [walk(n, m) for n, m in zip(node, model)]
        if isinstance(node, str) and "://" in node:
            return mask_url(node)
        return node

    return walk(plain, settings)


MASK = "********"
SECRET_QUERY_KEYS = ("key", "token", "secret", "password", "passwd", "pwd", "signature", "sig", "auth", "code")


def secret_key(key: str) -> bool:
    """Config keys whose values are never echoed in an error."""
    last = key.rsplit(".", 1)[-1]
    return "secret" in last or "password" in last or "token" in last


def _secret_query_key(key: str) -> bool:
    key = key.lower()
    return any(key == k or key.endswith(("_" + k, "-" + k)) or key.startswith(k) for k in SECRET_QUERY_KEYS)


def mask_url(url: str) -> str:
    """`url` with its password and the values of secret-looking query keys (key=, token=, secret=,
    access_token=, ...) masked; anything that does not parse is masked whole."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return MASK
    if password is not None:
        url = url.replace(f":{password}@", f":{MASK}@", 1)
    head, sep, rest = url.partition("?")
    query, hash_sep, fragment = rest.partition("#")
    query = "&".join(
        f"{k}={MASK}" if eq and _secret_query_key(k) else f"{k}{eq}{v}"
        for k, eq, v in (item.partition("=") for item in query.split("&"))
    )
    return f"{head}{sep}{query}{hash_sep}{fragment}"
