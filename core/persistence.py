"""Row-level writes every app's services share: a locked fresh read, and a save that explains a clash."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Model

from core.errors import ConflictError, NotFoundError

_M = TypeVar("_M", bound=Model)


def row_lock(model: type[_M], pk: Any) -> _M:
    """The row, fresh and locked for the rest of the transaction, so concurrent edits apply one by one."""
    instance = model._default_manager.select_for_update().filter(pk=pk).first()
    if instance is None:
        raise NotFoundError(f"{model._meta.verbose_name} {pk} does not exist")
    return instance


def row_save_named(obj: Model, *, what: str) -> None:
    """Save ``obj`` (which has a unique ``name``); a name clash or another database rule becomes a 409."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as error:
        name = getattr(obj, "name", "")
        if type(obj)._default_manager.filter(name=name).exclude(pk=obj.pk).exists():
            raise ConflictError(f"a {what} named {name!r} already exists") from None
        constraint = (
            getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) or "a constraint"
        )
        raise ConflictError(f"the {what} breaks a database rule ({constraint})") from None
