"""The web UI's basic-auth file: a bcrypt hash of the password from Secrets Manager, never the password."""

from __future__ import annotations

import bcrypt

from .config import write_atomically
from .settings import Settings


class AuthError(RuntimeError):
    pass


def htpasswd_line(user: str, password: str, rounds: int = 10) -> str:
    if not user or ":" in user:
        raise AuthError("BASIC_AUTH_USER is empty or contains ':'")
    if not password:
        raise AuthError("BASIC_AUTH_PASSWORD is empty")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return f"{user}:{hashed}\n"


def write_htpasswd(settings: Settings) -> str:
    """Write the htpasswd file (mode 0600) and return the user name (for the log)."""
    write_atomically(settings.htpasswd, htpasswd_line(settings.basic_auth_user, settings.basic_auth_password), 0o600)
    return settings.basic_auth_user
