"""ccgate doctor: name the one root cause of a failing Claude Code connection.

Programmatic API::

    from ccgate.doctor import DoctorOptions, run_checks
    report = run_checks(DoctorOptions(base_url="http://127.0.0.1:4545", key="..."))
    report.ok, report.root_cause, report.to_json()
"""

from ccgate.doctor.catalogue import CATALOGUE, REQUIRED_IDS
from ccgate.doctor.model import DoctorOptions, Explanation, Finding, Report, Severity
from ccgate.doctor.runner import run_checks, run_checks_async

__all__ = [
    "CATALOGUE",
    "REQUIRED_IDS",
    "DoctorOptions",
    "Explanation",
    "Finding",
    "Report",
    "Severity",
    "run_checks",
    "run_checks_async",
]
