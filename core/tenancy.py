"""Whose request this is: the caller's tenant, in a context variable the API sets per request
(api/auth.py) and the stores read, so that isolation does not depend on every route
remembering it.

While it is set, records (runs, batches, assets) are created with that tenant, and reads of
another tenant's record find nothing, so every route answers 404 exactly as for a record
that never existed. Worker processes never set it: they see every record.
"""

from __future__ import annotations

from contextvars import ContextVar

current_tenant: ContextVar[str | None] = ContextVar("renderq_tenant", default=None)


def visible(tenant: str | None) -> bool:
    """Whether a record of `tenant` may be seen by the current caller."""
    caller = current_tenant.get()
    return caller is None or (tenant or "") == caller


def stamp() -> str:
    """The tenant a record created now belongs to ("" outside a request)."""
    return current_tenant.get() or ""
