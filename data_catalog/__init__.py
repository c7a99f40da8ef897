"""The DuckDB catalog: schema, connections and every SQL statement of ctae."""

from data_catalog.connection import (
    CatalogBusyError,
    CatalogMissingError,
    connect,
    transaction,
)
from data_catalog.schema import SCHEMA_VERSION, ensure_schema
from data_catalog.settings import CatalogSettings

__all__ = [
    "SCHEMA_VERSION",
    "CatalogBusyError",
    "CatalogMissingError",
    "CatalogSettings",
    "connect",
    "ensure_schema",
    "transaction",
]
