import msgspec
import pytest

from ccgate.config.secrets import Secret
from ccgate.errors import (
    AuthenticationFailed,
    InvalidRequest,
    RateLimited,
    UpstreamTimeout,
    to_envelope,
)
from ccgate.server.auth import ClientAuth
from ccgate.wire.anthropic import decode_count_tokens, decode_messages


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is empty"),
        (b'{"model":"m","max_tokens":1,\n"messages":[}', "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"max_tokens":1,"messages":[]}', "model: Field required"),
        (b'{"model":"m","messages":[]}', "max_tokens: Field required"),
        (b'{"model":"m","max_tokens":"1","messages":[]}', "max_tokens: Expected `int`, got `str`"),
        (b'{"model":"m","max_tokens":1,"messages":"hi"}', "messages: Expected `array`, got `str`"),
        (b'{"model":["m"],"max_tokens":1,"messages":[]}', "model: Expected `str`, got `array`"),
        (b'{"model":"m","max_tokens":1,"messages":{}}', "messages: Expected `array`, got `object`"),
        (b'{"model":"m","max_tokens":1,"messages":[],"stream":"yes"}', "stream: Expected `bool`, got `str`"),
        (b'{"model":"m","max_tokens":1e400,"messages":[]}', "number out of range"),
        (b'{"model":"m\xff","max_tokens":1,"messages":[]}', "invalid UTF-8"),
    ],
)
def test_messages_validation_names_the_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_messages(body)
    assert message in info.value.message


def test_parse_error_gives_line_and_column() -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_messages(b'{"model":"m",\n  "max_tokens": 1,, "messages":[]}')
    assert "line 2, column" in info.value.message


def test_unknown_fields_pass_and_messages_stay_raw() -> None:
    head = decode_messages(
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],'
        b'"context_management":{"edits":[]},"stream":true}'
    )
    assert head.stream is True and msgspec.json.decode(head.messages) == [{"role": "user", "content": "x"}]
    assert set(head.fields) == {"model", "max_tokens", "messages", "context_management", "stream"}
    spaced = decode_messages(b'{ "model" : "m" , "max_tokens" : 1 , "messages" : [ ] , "stream" : false }')
    assert bytes(spaced.messages) == b"[ ]" and spaced.stream is False
    assert decode_count_tokens(b'{"model":"m","messages":[]}').model == "m"


def test_envelope_shape_and_retry_header() -> None:
    status, headers, body = to_envelope(InvalidRequest("max_tokens: bad"), "req_1")
    assert status == 400
    assert msgspec.json.decode(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: bad"},
        "request_id": "req_1",
    }
    assert (b"x-should-retry", b"false") in headers
    status, headers, _ = to_envelope(RateLimited("slow down", headers={"retry-after": "3"}), "r")
    assert status == 429 and (b"x-should-retry", b"true") in headers and (b"retry-after", b"3") in headers
    assert to_envelope(UpstreamTimeout("t", hop="read"), "r")[0] == 504


def test_client_auth_accepts_both_headers() -> None:
    auth = ClientAuth({"alice": Secret("tok-alice-0123456789")})
    assert auth.authenticate(b"tok-alice-0123456789", None).name == "alice"
    assert auth.authenticate(None, b"Bearer tok-alice-0123456789").key_id == "config:alice"
    with pytest.raises(AuthenticationFailed, match="invalid"):
        auth.authenticate(b"tok-alice-012345678X", None)
    with pytest.raises(AuthenticationFailed, match="missing"):
        auth.authenticate(None, b"Basic abc")
