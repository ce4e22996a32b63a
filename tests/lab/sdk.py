"""Official-SDK clients wired for the lab (explicit CA, no proxy env, key in ``x-api-key``).

Note: the pinned ``anthropic`` SDK (2.x) sends ``api_key`` as ``Authorization: Bearer``. The
lab's fake upstream, like the documented real API, answers a Bearer API key with
``401 OAuth authentication is currently not supported.`` unless ``accept_bearer`` is set, so
these helpers put the key in ``x-api-key`` (what Claude Code sends for ANTHROPIC_API_KEY).
"""

from __future__ import annotations

import ssl
from typing import Any

import anthropic

from tests.lab.fake_anthropic import LAB_API_KEY


def sdk_client(base_url: str, *, verify: ssl.SSLContext | bool = True,
               api_key: str = LAB_API_KEY, proxy: str | None = None,
               **kwargs: Any) -> anthropic.Anthropic:
    """A sync client; ``proxy`` is an explicit proxy URL (env proxies are ignored)."""
    http = anthropic.DefaultHttpxClient(verify=verify, trust_env=False, proxy=proxy)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 20.0)
    return anthropic.Anthropic(base_url=base_url, api_key=None, auth_token=None,
                               default_headers={"x-api-key": api_key},
                               http_client=http, **kwargs)


def async_sdk_client(base_url: str, *, verify: ssl.SSLContext | bool = True,
                     api_key: str = LAB_API_KEY, proxy: str | None = None,
                     **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An async client with the same wiring as :func:`sdk_client`."""
    http = anthropic.DefaultAsyncHttpxClient(verify=verify, trust_env=False, proxy=proxy)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 20.0)
    return anthropic.AsyncAnthropic(base_url=base_url, api_key=None, auth_token=None,
                                    default_headers={"x-api-key": api_key},
                                    http_client=http, **kwargs)
