import copy

from ccgate.translate import estimate_input_tokens, tokens

BODY = {
    "system": [{"type": "text", "text": "You are Claude Code. " * 200}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Fix the bug in parser.py " * 40}]}],
    "tools": [{"name": f"Tool{i}", "description": "Runs a command. " * 50,
               "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
              for i in range(10)],
}


def test_memo_is_exact_and_bounded() -> None:
    tokens._memo.clear()
    cold = estimate_input_tokens(BODY)
    assert tokens._memo  # long strings and tool JSON were remembered
    warm = estimate_input_tokens(copy.deepcopy(BODY))  # new objects, same content: memo hits
    assert warm == cold
    changed = copy.deepcopy(BODY)
    changed["tools"][0]["description"] += " And more."
    assert estimate_input_tokens(changed) > cold  # a changed string is counted afresh
    assert tokens._memo_chars <= tokens._MEMO_MAX_CHARS
