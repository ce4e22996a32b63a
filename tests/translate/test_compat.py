import json
from typing import Any

from ccgate.translate import Quirks, translate_request
from ccgate.translate.compat import AnthropicQuirks, rewrite_body
from ccgate.translate.ids import hashed_user_id

CC_USER_ID = json.dumps({"device_id": "abc", "account_uuid": "", "session_id": "s-1"})


def test_sanitize_user_id_is_stable_and_matches_the_providers_pattern() -> None:
    quirks = AnthropicQuirks(user_id="sanitize")
    a = {"metadata": {"user_id": CC_USER_ID}}
    b = {"metadata": {"user_id": CC_USER_ID}}
    assert rewrite_body(a, quirks) == ["metadata.user_id"]
    rewrite_body(b, quirks)
    assert a == b and a["metadata"]["user_id"].startswith("ccgate-")
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
    body: dict[str, Any] = {"model": "m", "metadata": {"user_id": CC_USER_ID}}
    assert not AnthropicQuirks().rewrites_body
    assert rewrite_body(body, AnthropicQuirks()) == [] and body["metadata"]["user_id"] == CC_USER_ID


def test_user_id_is_hashed_one_way_for_every_provider_stable_per_user() -> None:
    # Passthrough (sanitize) and translation (OpenAI "user") use one rule: the account, else the
    # device, is hashed, never the session, so all of one user's sessions share one value.
    def cc(session: str, account: str = "") -> str:
        return json.dumps({"device_id": "dev-1", "account_uuid": account, "session_id": session})

    def passthrough(user_id: str) -> str:
        body = {"metadata": {"user_id": user_id}}
        rewrite_body(body, AnthropicQuirks(user_id="sanitize"))
        return str(body["metadata"]["user_id"])

    def translated(user_id: str) -> str:
        request = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                   "metadata": {"user_id": user_id}}
        return str(translate_request(request, model="m", quirks=Quirks(send_user=True)).body["user"])

    device = hashed_user_id(cc("s-1"))
    assert device == hashed_user_id(cc("s-2")) == passthrough(cc("s-1")) == passthrough(cc("s-2"))
    assert device == translated(cc("s-1")) == translated(cc("s-2"))
    account = passthrough(cc("s-1", account="acct-1"))
    assert account != device and account == translated(cc("s-3", account="acct-1"))
    assert hashed_user_id(cc("s-1", account="acct-2")) != account  # different users differ
    assert device.startswith("ccgate-") and len(device) == len("ccgate-") + 32
    assert all(c.isalnum() or c in "_-" for c in device)
