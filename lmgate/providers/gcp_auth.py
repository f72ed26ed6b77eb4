"""Google service-account OAuth for Vertex AI: an access token cached until shortly before it
expires, refreshed by google-auth in a worker thread (its HTTP is blocking), one refresh at a time.

The token endpoint is the service account's own `token_uri`, so a test can point it at the
simulator's `/token`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from lmgate.errors import ConfigError, UpstreamAuthError, UpstreamUnavailable

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_REFRESH_MARGIN_S = 300.0  # refresh this long before the token expires
_TOKEN_TIMEOUT_S = 15.0


def load_service_account(credentials_json: str | None, credentials_file: str | None) -> dict[str, Any]:
    """The service-account JSON from config (inline text or a file), checked at start."""
    if credentials_json:
        text = credentials_json
        source = "credentials_json"
    elif credentials_file:
        try:
            text = Path(credentials_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"vertex credentials_file {credentials_file!r} cannot be read: {exc.strerror}") from None
        source = credentials_file
    else:
        raise ConfigError("a vertex provider needs credentials_file or credentials_json (a service-account key)")
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(f"vertex {source} is not valid JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f"vertex {source} is not a service-account key (type must be 'service_account')")
    for key in ("client_email", "private_key", "token_uri"):
        if not info.get(key):
            raise ConfigError(f"vertex {source} lacks '{key}'")
    return info


class ServiceAccountTokens:
    """Access tokens for one service account and scope."""

    def __init__(self, info: dict[str, Any], scopes: tuple[str, ...] = (CLOUD_PLATFORM,)) -> None:
        from google.oauth2 import service_account

        try:
            self._creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"the vertex service-account key is not usable: {exc}") from None
        self.project_id: str | None = info.get("project_id")
        self._lock: asyncio.Lock | None = None
        self._session: Any = None
        self.refreshes = 0  # for tests and metrics

    def _fresh(self) -> bool:
        creds = self._creds
        if not creds.token or creds.expiry is None:
            return False
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # google-auth keeps naive UTC
        return (creds.expiry - now).total_seconds() > _REFRESH_MARGIN_S

    async def token(self) -> str:
        """A valid access token; refreshes (once, whatever the number of waiting callers) when due."""
        if self._fresh():
            return self._creds.token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._fresh():
                await asyncio.to_thread(self._refresh)
        return self._creds.token

    def invalidate(self) -> None:
        """Forget the token (the upstream refused it): the next call fetches a new one."""
        self._creds.token = None

    def _refresh(self) -> None:
        import google.auth.exceptions
        import requests
        from google.auth.transport.requests import Request

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False

        class _Timed(Request):
            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("timeout", _TOKEN_TIMEOUT_S)
                return super().__call__(*args, **kwargs)

        try:
            self._creds.refresh(_Timed(self._session))
        except google.auth.exceptions.RefreshError as exc:
            raise UpstreamAuthError(f"the Google token endpoint refused the service account: {_short(exc)}") from None
        except google.auth.exceptions.TransportError:
            raise UpstreamUnavailable("the Google token endpoint could not be reached") from None
        self.refreshes += 1


def _short(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.split(":", 1)[0][:120]
