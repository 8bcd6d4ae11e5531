"""The model catalog: schemas, prices, and whether the configured engine can run each model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kinema.api.auth import ServicesDep
from kinema.api.envelope import ok
from kinema.api.routes.health import unserved_models

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models", summary="The models this server offers")
def models(found: ServicesDep) -> dict[str, Any]:
    listing = []
    unserved = set(unserved_models(found))
    for model in found.catalog:
        prices = found.prices.for_model(model.name)
        engine = found.engine_for(model.name)
        listing.append(
            {
                "model": model.name,
                "description": model.description,
                "capability": model.capability.value,
                "available": model.capability in engine.capabilities,
                # Whether a live worker takes its tasks now (else they wait for one).
                "served": model.name not in unserved,
                "engine": engine.name,
                "generatesContent": engine.generates_content,
                "input": found.catalog.json_schema(model),
                "prices": [
                    {"duration": str(duration), "resolution": resolution.value, "credits": credits}
                    for (duration, resolution), credits in sorted(prices.items())
                ],
            }
        )
    return ok(listing)
