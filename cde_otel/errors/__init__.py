"""Coded errors: the one public home of the exception classes, their codes and their presentation.

    from cde_otel.errors import ErrorFormatter, FeatureError

    try:
        project.start_feature("...")
    except FeatureError as error:          # error.code == "E101", error.context, error.recoverable
        print(ErrorFormatter.format(error))

- the hierarchy and the registry: :class:`CDEError` and its subclasses, :data:`ERROR_CODES`, :func:`error_for`;
- the catalog (:data:`CATALOG`, :func:`catalog_entry`): title, description, causes and fixes per code;
- :class:`ErrorFormatter`: the text (emoji or ASCII) and JSON renderings users and tool clients see.

The classes are *defined* in the private leaf module ``cde_otel._exceptions`` so that every
layer, the pure core included, raises them without importing the catalog and the formatter
(which read the core's limits and the settings); import them from here, or from ``cde_otel``.
The generated reference is ``docs/errors/catalog.md`` (``cde-otel errors docs --write``).
"""

from cde_otel._exceptions import (
    ERROR_CODES,
    CDEError,
    CDESystemError,
    CircuitBreakerOpenError,
    ErrorCode,
    FeatureError,
    LocalTelemetryError,
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
    "LocalTelemetryError",
    "ProjectError",
    "ReadOnlyModeError",
    "Severity",
    "StateError",
    "ValidationError",
    "as_cde_error",
    "catalog_entry",
    "error_for",
]
