"""Admission policies: admit or reject each arriving request."""

from __future__ import annotations

from ..engine.request import Request
from .base import RouterState
from .registry import Registry

ADMISSION: Registry = Registry("admission policy", "--admission-policy",
                               planned=("token-bucket", "reject-all"))


@ADMISSION.register("always-admit")
class AlwaysAdmit:
    """Admit everything."""

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        return True, ""
