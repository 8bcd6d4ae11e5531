"""The model catalog: each model's input as data, request validation, and prices.

Imports only the domain, so that the API, the worker and the CLI can all read it.
"""

from __future__ import annotations

from kinema.catalog.models import (
    DEFAULT_MODELS,
    MAX_URL_LENGTH,
    Catalog,
    FieldKind,
    FieldValue,
    ForbiddenCombination,
    InputField,
    ModelSpec,
    default_catalog,
)
from kinema.catalog.pricing import DEFAULT_PRICES, PriceKey, PriceTable, parse_price_key, price_key_text
from kinema.catalog.validation import UNSUPPORTED_MODEL, TaskRequest, validate_create_task

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_PRICES",
    "MAX_URL_LENGTH",
    "UNSUPPORTED_MODEL",
    "Catalog",
    "FieldKind",
    "FieldValue",
    "ForbiddenCombination",
    "InputField",
    "ModelSpec",
    "PriceKey",
    "PriceTable",
    "TaskRequest",
    "default_catalog",
    "parse_price_key",
    "price_key_text",
    "validate_create_task",
]
