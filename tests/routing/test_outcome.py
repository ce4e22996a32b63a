"""Classification of every status and failure named in issue #5."""

from __future__ import annotations

import pytest

from ccgate.errors import InternalError, RequestTooLarge, UpstreamTimeout, UpstreamUnreachable
from ccgate.routing.clock import ManualClock
from ccgate.routing.outcome import (
    ACCOUNT_COOLDOWN,
    RATE_LIMIT_COOLDOWN,
    Failover,
    OutcomeKind,
    classify,
    parse_retry_after,
)

K = OutcomeKind
ANTHROPIC_429 = b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}'
REGION_403 = b'{"error":{"type":"forbidden","message":"Request not allowed"}}'
PERMISSION_403 = b'{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}'
AUTH_401 = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
CREDIT_400 = b'{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}'
DEEPSEEK_402 = b'{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}'
NEW_API_403 = '{"error":{"message":"分组 default 已被弃用 (request id: 2025)","type":"new_api_error","code":""}}'.encode()
OPENAI_QUOTA_429 = b'{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'
OPENAI_REGION_403 = b'{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}'
MODERATION_403 = b'{"error":{"code":403,"message":"Input was flagged by moderation","metadata":{"reasons":["x"]}}}'


# status, body, kind, retryable, trips_breaker, failover, key action kind
TABLE = [
    (408, b"", K.TIMEOUT, True, True, Failover.PROVIDER, "none"),
    (409, b"", K.CONFLICT, True, False, Failover.PROVIDER, "none"),
    (429, ANTHROPIC_429, K.RATE_LIMITED, True, False, Failover.PROVIDER, "cooldown"),
    (500, b'{"type":"error","error":{"type":"api_error","message":"Internal server error"}}',
     K.SERVER_ERROR, True, True, Failover.PROVIDER, "none"),
    (502, b"<html>bad gateway</html>", K.SERVER_ERROR, True, True, Failover.PROVIDER, "none"),
    (503, b"", K.OVERLOADED, True, True, Failover.PROVIDER, "none"),
    (504, b"", K.TIMEOUT, True, True, Failover.PROVIDER, "none"),
    (520, b"", K.SERVER_ERROR, True, True, Failover.PROVIDER, "none"),
    (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
     K.OVERLOADED, True, True, Failover.PROVIDER, "none"),
    (400, b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}',
     K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
    (404, b'{"type":"error","error":{"type":"not_found_error","message":"model: nope"}}',
     K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
    (413, b"", K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
    (422, b'{"detail":[]}', K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
    (501, b"", K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
    (401, AUTH_401, K.AUTH_ERROR, False, False, Failover.KEY, "disable"),
    (403, PERMISSION_403, K.AUTH_ERROR, False, False, Failover.KEY, "disable"),
    (403, b"", K.AUTH_ERROR, False, False, Failover.KEY, "disable"),
    (402, DEEPSEEK_402, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (402, b"", K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (400, CREDIT_400, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (403, REGION_403, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "none"),
    (403, OPENAI_REGION_403, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "none"),
    (403, NEW_API_403, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (403, b'{"type":"error","error":{"type":"billing_error","message":"x"}}',
     K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (429, OPENAI_QUOTA_429, K.ACCOUNT_ERROR, False, False, Failover.PROVIDER, "cooldown"),
    (403, MODERATION_403, K.CLIENT_ERROR, False, False, Failover.NONE, "none"),
]


@pytest.mark.parametrize(("status", "body", "kind", "retryable", "trips", "failover", "action"), TABLE)
def test_status_table(status: int, body: bytes, kind: OutcomeKind, retryable: bool, trips: bool,
                      failover: Failover, action: str) -> None:
    o = classify(status, None, {}, body)
    assert (o.kind, o.retryable, o.trips_breaker, o.failover, o.key_action.kind) == (
        kind, retryable, trips, failover, action)
    assert o.status == status
    assert not o.ok


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_success(status: int) -> None:
    o = classify(status, None, {"retry-after": "5"})
    assert o.ok and o.kind is K.SUCCESS and not o.trips_breaker and o.failover is Failover.NONE


def test_reason_names_status_and_type_for_the_disable_report() -> None:
    o = classify(401, None, {}, AUTH_401)
    assert o.key_action.reason == "401 authentication_error: invalid x-api-key"
    assert o.reason == o.key_action.reason
    region = classify(403, None, {}, REGION_403)
    assert region.reason == "403 region blocked (Request not allowed)"


def test_reason_never_echoes_a_key() -> None:
    body = b'{"error":{"message":"Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwxyz012345","type":"invalid_request_error"}}'
    o = classify(401, None, {}, body)
    assert "abcdefghijklmnop" not in o.reason
    assert "...2345" in o.reason


def test_connect_error_and_timeout_trip_and_retry() -> None:
    unreachable = classify(None, UpstreamUnreachable("cannot connect", hop="tcp"), {})
    assert (unreachable.kind, unreachable.retryable, unreachable.trips_breaker, unreachable.failover) == (
        K.CONNECT_ERROR, True, True, Failover.PROVIDER)
    assert unreachable.error is not None and unreachable.status is None
    assert unreachable.reason == "connect_error (tcp)"
    timeout = classify(None, UpstreamTimeout("timed out", hop="read"), {})
    assert (timeout.kind, timeout.retryable, timeout.trips_breaker) == (K.TIMEOUT, True, True)


def test_tls_failure_is_not_retried_but_trips_and_fails_over() -> None:
    o = classify(None, UpstreamUnreachable("TLS verification failed", hop="tls"), {})
    assert (o.retryable, o.trips_breaker, o.failover) == (False, True, Failover.PROVIDER)


def test_gateway_own_errors_are_neither_retried_nor_held_against_the_provider() -> None:
    for err in (InternalError("bug"), RequestTooLarge("too big")):
        o = classify(None, err, {})
        assert (o.retryable, o.trips_breaker, o.failover) == (False, False, Failover.NONE)
        assert o.error is err


def test_error_wins_over_status_and_nothing_is_an_error() -> None:
    assert classify(200, UpstreamTimeout("t"), {}).kind is K.TIMEOUT
    with pytest.raises(ValueError):
        classify(None, None, {})


def test_proxy_answers_are_a_network_failure_not_a_key_failure() -> None:
    o = classify(403, None, {"X-Squid-Error": "ERR_ACCESS_DENIED 0"}, b"<html>denied</html>")
    assert (o.kind, o.key_action.kind, o.trips_breaker, o.retryable) == (K.CONNECT_ERROR, "none", True, False)
    assert "ERR_ACCESS_DENIED" in o.reason
    assert classify(407, None, {}).kind is K.CONNECT_ERROR


def test_x_should_retry_overrides_the_status() -> None:
    assert not classify(529, None, {"x-should-retry": "false"}).retryable
    assert classify(529, None, {"x-should-retry": "false"}).trips_breaker
    assert classify(400, None, {"X-Should-Retry": "true"}).retryable
    assert not classify(400, None, {"x-should-retry": "maybe"}).retryable
    # not for a key or account verdict
    assert not classify(401, None, {"x-should-retry": "true"}).retryable
    assert not classify(402, None, {"x-should-retry": "true"}).retryable


def test_429_cools_the_key_for_retry_after_or_the_ratelimit_reset_or_the_default() -> None:
    clock = ManualClock()
    o = classify(429, None, {"Retry-After": "7"}, ANTHROPIC_429, clock=clock)
    assert o.retry_after == 7.0 and o.key_action.seconds == 7.0
    assert o.reason.startswith("429 rate_limit_error")
    reset = "2026-01-01T00:00:12Z"  # clock.time() is 2026-01-01T00:00:00Z
    h = {"anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": reset,
         "anthropic-ratelimit-requests-remaining": "3", "anthropic-ratelimit-requests-reset": "2026-01-01T00:30:00Z"}
    o = classify(429, None, h, clock=clock)
    assert o.retry_after is None and o.key_action.seconds == pytest.approx(12.0)
    assert classify(429, None, {}).key_action.seconds == RATE_LIMIT_COOLDOWN


def test_account_cooldown_default() -> None:
    assert classify(402, None, {}).key_action.seconds == ACCOUNT_COOLDOWN


def test_truncated_json_body_still_classifies() -> None:
    assert classify(403, None, {}, REGION_403[:40]).kind is K.ACCOUNT_ERROR
    assert classify(400, None, {}, CREDIT_400[:120]).kind is K.ACCOUNT_ERROR


class TestRetryAfter:
    clock = ManualClock()

    def parse(self, **h: str) -> float | None:
        return parse_retry_after({k.replace("_", "-"): v for k, v in h.items()}, self.clock)

    def test_seconds_and_fractions(self) -> None:
        assert self.parse(retry_after="3") == 3.0
        assert self.parse(retry_after=" 1.5 ") == 1.5

    def test_ms_is_preferred(self) -> None:
        assert self.parse(retry_after="3", retry_after_ms="250") == 0.25

    def test_http_date(self) -> None:
        # clock.time() = 2026-01-01T00:00:00Z
        assert self.parse(retry_after="Thu, 01 Jan 2026 00:00:30 GMT") == pytest.approx(30.0)
        assert self.parse(retry_after="Wed, 31 Dec 2025 23:59:00 GMT") == 0.0

    def test_garbage_and_negative(self) -> None:
        assert self.parse(retry_after="soon") is None
        assert self.parse(retry_after="nan") is None
        assert self.parse(retry_after="-4") == 0.0
        assert self.parse(retry_after_ms="x", retry_after="2") == 2.0
        assert self.parse() is None
