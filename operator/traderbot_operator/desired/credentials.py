"""Generated credentials: database, Redis, the read-only API key and (unless the spec names one)
the API key.

NB: the values are generated once, when the Secret does not exist; reconcile never
patches a Secret's data afterwards (the database keeps the password it was
initialised with, so a new one would lock the API out).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from traderbot_operator.desired.common import (
    COMPONENT_API,
    COMPONENT_CACHE,
    COMPONENT_DATABASE,
    DATABASE_NAME,
    DATABASE_PORT,
    DATABASE_USER,
    REDIS_PORT,
    Manifest,
    Names,
    content_hash,
    metadata,
    secret_env,
)
from traderbot_operator.models import TraderBot

TokenFactory = Callable[[int], str]

PASSWORD_BYTES = 32
DATABASE_USER_KEY = "username"
DATABASE_PASSWORD_KEY = "password"  # noqa: S105 - the key's name, not a password
REDIS_PASSWORD_KEY = "password"  # noqa: S105 - the key's name, not a password
API_KEY_KEY = "api-key"
READ_API_KEY_KEY = "read-api-key"


def _secret(
    bot: TraderBot, *, name: str, component: str, data: dict[str, str], owned: bool = True
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(bot, name=name, component=component, owned=owned),
        "type": "Opaque",
        "stringData": data,
    }


def build_database_secret(
    bot: TraderBot, *, token: TokenFactory = secrets.token_urlsafe
) -> Manifest:
    """Build the database credentials Secret with a freshly generated password.

    NB: it follows ``deletionPolicy`` like the database volume: the database keeps
    the password it was initialised with, so a volume kept without its password
    could never be opened by a re-created bot.
    """
    return _secret(
        bot,
        name=Names(bot.name).database_secret,
        component=COMPONENT_DATABASE,
        data={DATABASE_USER_KEY: DATABASE_USER, DATABASE_PASSWORD_KEY: token(PASSWORD_BYTES)},
        owned=bot.spec.deletion_policy == "Delete",
    )


def build_redis_secret(bot: TraderBot, *, token: TokenFactory = secrets.token_urlsafe) -> Manifest:
    """Build the Redis password Secret with a freshly generated password."""
    return _secret(
        bot,
        name=Names(bot.name).redis_secret,
        component=COMPONENT_CACHE,
        data={REDIS_PASSWORD_KEY: token(PASSWORD_BYTES)},
    )


def build_api_key_secret(
    bot: TraderBot, *, token: TokenFactory = secrets.token_urlsafe
) -> Manifest | None:
    """Build the generated API key Secret, or nothing when the spec names its own."""
    if bot.spec.api.api_key_secret_ref is not None:
        return None
    return _secret(
        bot,
        name=Names(bot.name).api_key_secret,
        component=COMPONENT_API,
        data={API_KEY_KEY: token(PASSWORD_BYTES)},
    )


def build_read_key_secret(
    bot: TraderBot, *, token: TokenFactory = secrets.token_urlsafe
) -> Manifest:
    """Build the read-only API key Secret (trader-api's READ_API_KEY).

    NB: generated even when the spec names its own API key: the operator reads the
    bot's risk state with this key, which opens reads only, so the operator never
    holds a key that can trade, and needs no access to the user's Secret's content.
    """
    return _secret(
        bot,
        name=Names(bot.name).api_read_key_secret,
        component=COMPONENT_API,
        data={READ_API_KEY_KEY: token(PASSWORD_BYTES)},
    )


def read_key_of(secret: Mapping[str, Any] | None) -> str | None:
    """Return the read-only key held by a live (or just built) read-key Secret, if any."""
    if secret is None:
        return None
    plain = (secret.get("stringData") or {}).get(READ_API_KEY_KEY)
    if plain is not None:
        return str(plain)
    encoded = (secret.get("data") or {}).get(READ_API_KEY_KEY)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def api_key_ref(bot: TraderBot) -> tuple[str, str]:
    """Return the (Secret name, key) holding the API key the pods use."""
    ref = bot.spec.api.api_key_secret_ref
    if ref is not None:
        return ref.name, ref.key
    return Names(bot.name).api_key_secret, API_KEY_KEY


def secret_digest(secret: Mapping[str, Any]) -> str:
    """Return a hash of a Secret's content, the same for a built manifest and the live object.

    NB: the server stores ``stringData`` base64-encoded in ``data``; encoding it here
    lets the hash of a Secret about to be created equal the hash of it once created,
    so a new bot's pods do not roll once more after their first start.
    """
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    return content_hash(data)


def connection_env(bot: TraderBot) -> list[dict[str, Any]]:
    """Return the env that reaches this bot's database and Redis: hosts, ports, credentials.

    NB: one list for every pod that connects (trader-api, trader-backup), so a renamed
    variable or Secret key cannot drift between them.
    """
    names = Names(bot.name)
    return [
        {"name": "DATABASE_HOST", "value": names.database},
        {"name": "DATABASE_PORT", "value": str(DATABASE_PORT)},
        {"name": "DATABASE_NAME", "value": DATABASE_NAME},
        secret_env("DATABASE_USER", secret=names.database_secret, key=DATABASE_USER_KEY),
        secret_env("DATABASE_PASSWORD", secret=names.database_secret, key=DATABASE_PASSWORD_KEY),
        {"name": "REDIS_HOST", "value": names.redis},
        {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
        secret_env("REDIS_PASSWORD", secret=names.redis_secret, key=REDIS_PASSWORD_KEY),
    ]
