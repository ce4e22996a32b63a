"""Anthropic Messages <-> OpenAI Chat Completions, sans-IO (no sockets, no asyncio, no I/O).

Data in, data out, in the style of h11: the server owns the connections and calls these.

    tr = translate_request(body, model="deepseek-chat", quirks=quirks)      # may raise InvalidRequest
    # non-streaming: translate_response(resp, model=client_model, tools=tr.tools, ...)
    # streaming:     st = StreamTranslator(model=client_model, tools=tr.tools, ...)
    #                st.start(); st.feed(chunk)...; st.finish()    (st.fail(...) if upstream dies)
    # streaming bytes: sp = StreamPipeline(st, provider=...); sp.feed(data)...; sp.close() at EOF
    # client streams but tr.upstream_stream is False: stream_from_response(resp, ...)
    # upstream HTTP error before any byte was sent: raise translate_upstream_error(status, body, ...)
    # Anthropic-compatible passthrough: compat.rewrite_body(decoded, AnthropicQuirks(...))

docs/translation.md tables every field decision.
"""

from ccgate.translate.errors import error_in_chunk, translate_upstream_error
from ccgate.translate.pipeline import StreamPipeline
from ccgate.translate.quirks import Quirks
from ccgate.translate.reasoning import is_gateway_signature
from ccgate.translate.request import TranslatedRequest, translate_request
from ccgate.translate.response import translate_response
from ccgate.translate.stream import StreamTranslator, stream_from_response
from ccgate.translate.tokens import estimate_input_tokens
from ccgate.translate.toolnames import ToolNames

__all__ = [
    "Quirks",
    "StreamPipeline",
    "StreamTranslator",
    "ToolNames",
    "TranslatedRequest",
    "error_in_chunk",
    "estimate_input_tokens",
    "is_gateway_signature",
    "stream_from_response",
    "translate_request",
    "translate_response",
    "translate_upstream_error",
]
