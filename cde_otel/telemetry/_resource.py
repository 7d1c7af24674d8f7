"""The resource every signal of ours describes: service name and version, instance, host, OS, process."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from opentelemetry.sdk.resources import (
    OsResourceDetector,
    OTELResourceDetector,
    ProcessResourceDetector,
    Resource,
    get_aggregated_resources,
)

from cde_otel._otel_compat import host_resource_detector
from cde_otel._version import __version__

DEFAULT_SERVICE_NAME = "cde-orchestrator"


class _FrozenResource(Resource):
    """The SDK's ``Resource`` hashes by ``json.dumps`` of all its attributes on every call, and the OTLP
    encoders hash it once per span and per log record. Ours never changes: hash it once."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash


def build_resource(environ: Mapping[str, str]) -> Resource:
    """service.name (default cde-orchestrator), version, instance id, host, OS and process (hashed once)."""
    resource = _detected_resource(environ)
    return _FrozenResource(resource.attributes, resource.schema_url)


def _detected_resource(environ: Mapping[str, str]) -> Resource:
    detected = get_aggregated_resources(
        [ProcessResourceDetector(), OsResourceDetector(), *filter(None, [host_resource_detector()])],
        initial_resource=Resource.create({"service.version": __version__, "service.instance.id": str(uuid.uuid4())}),
    )
    # The OTEL_* variables (service name, resource attributes) win over what we detect.
    configured = OTELResourceDetector().detect()
    return detected.merge(configured).merge(Resource({"service.name": configured_service_name(environ, configured)}))


def configured_service_name(environ: Mapping[str, str], configured: Resource | None = None) -> str:
    """``OTEL_SERVICE_NAME``, else the ``service.name`` of ``OTEL_RESOURCE_ATTRIBUTES``, else cde-orchestrator."""
    named = environ.get("OTEL_SERVICE_NAME", "").strip()
    if named:
        return named
    found = str((configured or OTELResourceDetector().detect()).attributes.get("service.name", ""))
    return found if found and not found.startswith("unknown_service") else DEFAULT_SERVICE_NAME
