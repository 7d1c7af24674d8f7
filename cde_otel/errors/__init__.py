"""Coded errors (re-exported from the pure core) and their user-facing presentation.

- the hierarchy and the registry: :class:`CDEError` and its subclasses, :data:`ERROR_CODES`, :func:`error_for`;
- the catalog (:data:`CATALOG`, :func:`catalog_entry`): title, description, causes and fixes per code;
- :class:`ErrorFormatter`: the text (emoji or ASCII) and JSON renderings users and tool clients see.

The generated reference is ``docs/errors/catalog.md`` (``cde-otel errors docs --write``).
"""

from cde_otel.core.errors import (
    ERROR_CODES,
    CDEError,
    CDESystemError,
    CircuitBreakerOpenError,
    ErrorCode,
    FeatureError,
    ProjectError,
    ReadOnlyModeError,
    Severity,
    StateError,
    ValidationError,
    error_for,
)
from cde_otel.errors.catalog import CATALOG, CatalogEntry, catalog_entry
from cde_otel.errors.formatter import ErrorFormatter, as_cde_error

__all__ = [
    "CATALOG",
    "ERROR_CODES",
    "CDEError",
    "CDESystemError",
    "CatalogEntry",
    "CircuitBreakerOpenError",
    "ErrorCode",
    "ErrorFormatter",
    "FeatureError",
    "ProjectError",
    "ReadOnlyModeError",
    "Severity",
    "StateError",
    "ValidationError",
    "as_cde_error",
    "catalog_entry",
    "error_for",
]
