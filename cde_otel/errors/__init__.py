"""Coded errors (re-exported from the pure core) and their user-facing presentation."""

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

__all__ = [
    "ERROR_CODES",
    "CDEError",
    "CDESystemError",
    "CircuitBreakerOpenError",
    "ErrorCode",
    "FeatureError",
    "ProjectError",
    "ReadOnlyModeError",
    "Severity",
    "StateError",
    "ValidationError",
    "error_for",
]
