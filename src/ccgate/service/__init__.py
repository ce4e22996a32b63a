"""``ccgate service``: run the gateway as a per-user background service (docs/service.md).

units.py renders each platform's definition (pure: a ``ServiceSpec`` in, text out); manage.py
knows where each file lives, writes it atomically and asks the platform's service manager to
load, start, stop and describe it."""

from ccgate.service.manage import Platform, ServiceError, ServiceManager, current_platform
from ccgate.service.units import LABEL, ServiceSpec, launchd_plist, systemd_unit, windows_task

__all__ = ["LABEL", "Platform", "ServiceError", "ServiceManager", "ServiceSpec", "current_platform",
           "launchd_plist", "systemd_unit", "windows_task"]
