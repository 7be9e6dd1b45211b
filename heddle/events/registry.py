"""The process-global aggregate registry, filled explicitly by ``@register_aggregate``.

A decorator (not ``__init_subclass__``) keeps the wiring greppable and stops abstract bases
from registering themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from heddle.events.aggregate import Aggregate, RootAggregate
from heddle.events.envelopes import AGGREGATE_TYPE_PATTERN

__all__ = ["AGGREGATE_REGISTRY", "get_aggregate_class", "is_root_type", "register_aggregate"]

AGGREGATE_REGISTRY: dict[str, type[Aggregate]] = {}
"""Aggregate type name -> class. Tests snapshot and restore it (registry_isolation)."""

A = TypeVar("A", bound=type[Aggregate])


def register_aggregate(name: str) -> Callable[[A], A]:
    """Class decorator: set ``aggregate_type`` and register the class under ``name``.

    Re-registering the same (name, class) is a no-op; the same name with another class
    raises ValueError rather than shadowing it silently.
    """
    if not re.match(AGGREGATE_TYPE_PATTERN, name):
        raise ValueError(f"aggregate type {name!r} must match {AGGREGATE_TYPE_PATTERN}")

    def decorate(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Aggregate)):
            raise TypeError(f"@register_aggregate({name!r}) needs an Aggregate subclass")
        existing = AGGREGATE_REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"aggregate type {name!r} is already registered to "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        cls.aggregate_type = name
        AGGREGATE_REGISTRY[name] = cls
        return cls

    return decorate


def get_aggregate_class(name: str) -> type[Aggregate]:
    """The class registered under ``name``; KeyError naming the known types otherwise."""
    try:
        return AGGREGATE_REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no aggregate registered as {name!r}; known: {sorted(AGGREGATE_REGISTRY)}"
        ) from None


def is_root_type(name: str) -> bool:
    """True iff ``name`` is registered and its class subclasses RootAggregate."""
    cls = AGGREGATE_REGISTRY.get(name)
    return cls is not None and issubclass(cls, RootAggregate)
