import json

from ccgate.upstream.compat import AnthropicQuirks, rewrite_body

CC_USER_ID = json.dumps({"device_id": "abc", "account_uuid": "", "session_id": "s-1"})


def test_sanitize_user_id_is_stable_and_matches_the_providers_pattern() -> None:
    quirks = AnthropicQuirks(user_id="sanitize")
    a = {"metadata": {"user_id": CC_USER_ID}}
    b = {"metadata": {"user_id": CC_USER_ID}}
    assert rewrite_body(a, quirks) == ["metadata.user_id"]
    rewrite_body(b, quirks)
    assert a == b and a["metadata"]["user_id"].startswith("ccgate_")
    assert all(c.isalnum() or c in "_-" for c in a["metadata"]["user_id"])
    fine = {"metadata": {"user_id": "user_42"}}
    assert rewrite_body(fine, quirks) == [] and fine["metadata"]["user_id"] == "user_42"


def test_drop_fields_and_user_id() -> None:
    body = {"model": "m", "context_management": {"edits": []}, "output_config": {"effort": "high"},
            "metadata": {"user_id": CC_USER_ID}}
    changed = rewrite_body(body, AnthropicQuirks(drop_fields=frozenset({"context_management",
                                                                          "output_config"}),
                                                 user_id="drop"))
    assert sorted(changed) == ["context_management", "metadata.user_id", "output_config"]
    assert body == {"model": "m", "metadata": {}}


def test_default_quirks_change_nothing() -> None:
    body = {"model": "m", "metadata": {"user_id": CC_USER_ID}}
    assert not AnthropicQuirks().rewrites_body
    assert rewrite_body(body, AnthropicQuirks()) == [] and body["metadata"]["user_id"] == CC_USER_ID
