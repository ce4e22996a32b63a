"""Observability that is not Prometheus: OpenTelemetry traces (optional extra ``ccgate[otel]``,
tracing.py + otel.py) and the process's log setup (logs.py). The server calls only the small
interfaces in tracing.py; nothing here is imported on the hot path when tracing is off."""
