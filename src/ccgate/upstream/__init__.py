"""Talking to providers: transport (proxy, TLS, pooling) and error classification."""
