"""Small HTTP client for the backends the CLI queries (Jaeger, Prometheus) and ships to (a collector).

Failures become coded errors: no answer (refused, timeout, DNS) or a "not now" status (429, 502-504)
is E406, any other HTTP error status E407.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from cde_otel._exceptions import CDEError, error_for

TIMEOUT_S = 10.0
#: Statuses that mean "not now": retried by the export, reported as unreachable (E406) in the end.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})


class HttpStatusError(Exception):
    """An HTTP answer with an error status (kept apart so exporters can retry 429/503)."""

    def __init__(self, status: int, body: str, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


def request(
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
) -> bytes:
    """GET (or POST ``data``) ``url``: the body; ``HttpStatusError`` on an error status, ``OSError`` when unanswered."""
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url}")
    sent = urllib.request.Request(url, data=data, headers=dict(headers or {}), method="POST" if data else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(sent, timeout=timeout) as response:  # noqa: S310 (http(s) only, checked above)
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        raise HttpStatusError(error.code, text, error.headers.get("Retry-After")) from None
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from error


def backend_error(backend: str, url: str, error: BaseException) -> CDEError:
    """The coded error for a failed call to ``backend`` at ``url``."""
    if isinstance(error, HttpStatusError) and error.status in UNAVAILABLE_STATUSES:
        reason = f"HTTP {error.status}, overloaded or unavailable"
        return error_for("E406", backend=backend, url=url, reason=reason)
    if isinstance(error, HttpStatusError):
        return error_for("E407", backend=backend, url=url, status=error.status, reason=error.body.strip()[:300])
    return error_for("E406", backend=backend, url=url, reason=str(error) or type(error).__name__)


def get_json(backend: str, base_url: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
    """``GET base_url + path?params`` as JSON, or E406/E407."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    url = base_url.rstrip("/") + path + (f"?{query}" if query else "")
    try:
        return json.loads(request(url))
    except (OSError, HttpStatusError) as error:
        raise backend_error(backend, base_url, error) from error
    except ValueError as error:
        raise error_for("E407", backend=backend, url=base_url, status=200, reason=f"not JSON ({error})") from error
