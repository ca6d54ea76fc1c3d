"""The JSON Schema of ``dataproduct.yaml``, for editors (yaml-language-server) and CI."""

from __future__ import annotations

from typing import Any

from specfleet.core.spec.model import Spec


def spec_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
