"""Every ``GatewayError`` ccgate defines lives in errors.py, is in its docstring tree, and leaves
through ``to_envelope`` with the documented status and an Anthropic error type (in the spirit of
httpx's ``test_httpcore_all_exceptions_mapped``)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re

import ccgate
from ccgate import errors
from ccgate.errors import GatewayError, to_envelope

# https://platform.claude.com/docs/en/api/errors
ANTHROPIC_TYPES = {
    "invalid_request_error", "authentication_error", "billing_error", "permission_error",
    "not_found_error", "request_too_large", "rate_limit_error", "api_error", "timeout_error",
    "overloaded_error",
}
_TREE_LINE = re.compile(r"^[\s│├└─]*(?P<name>[A-Z]\w+)\s+(?P<status>\d{3}) (?P<type>[a-z_]+)(?P<rest>.*)$")


def _import_all() -> None:
    for module in pkgutil.walk_packages(ccgate.__path__, "ccgate."):
        if module.name != "ccgate.__main__":  # runs the CLI on import
            importlib.import_module(module.name)


def _subclasses(cls: type[GatewayError]) -> set[type[GatewayError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def _documented() -> dict[str, tuple[int, str, str]]:
    assert errors.__doc__ is not None
    out: dict[str, tuple[int, str, str]] = {}
    for line in errors.__doc__.splitlines():
        match = _TREE_LINE.match(line)
        if match:
            out[match["name"]] = (int(match["status"]), match["type"], match["rest"])
    return out


def test_every_gateway_error_is_in_errors_py_and_mapped_as_documented() -> None:
    _import_all()
    documented = _documented()
    ours = {c for c in _subclasses(GatewayError) if c.__module__.startswith("ccgate")}
    assert len(ours) > 15  # the walk found the hierarchy, not just the root
    for cls in sorted(ours, key=lambda c: c.__name__):
        assert cls.__module__ == "ccgate.errors", f"{cls.__qualname__} is defined in {cls.__module__}"
        assert cls.__name__ in documented, f"{cls.__name__} is missing from errors.py's docstring tree"
        status, error_type, rest = documented[cls.__name__]
        got_status, headers, body = to_envelope(cls("boom"), "req_test")
        if error_type in ("oauth", "page"):  # the login endpoints' protocol shapes, not Anthropic's
            assert got_status == status, cls.__name__
            if error_type == "oauth":
                assert json.loads(body) == {"error": "boom"}
            else:
                assert dict(headers)[b"content-type"].startswith(b"text/html") and b"boom" in body
            continue
        envelope = json.loads(body)
        assert (got_status, envelope["error"]["type"]) == (status, error_type), cls.__name__
        assert error_type in ANTHROPIC_TYPES, cls.__name__
        assert envelope == {"type": "error", "error": {"type": error_type, "message": "boom"},
                            "request_id": "req_test"}
        retry = dict(headers)[b"x-should-retry"]
        if "(not retried)" in rest:
            assert retry == b"false", cls.__name__
        if "(retryable)" in rest:
            assert retry == b"true", cls.__name__
    assert set(documented) == {c.__name__ for c in ours}, "the docstring names a class that does not exist"
