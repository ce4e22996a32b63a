"""The gateway's HTTP side: a raw ASGI app served by uvicorn (httptools + uvloop)."""
