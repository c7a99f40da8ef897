"""The DuckDB catalog: schema, connections and every SQL statement of ctae."""

from data_catalog.connection import (
    CatalogBusyError,
    CatalogMissingError,
    CatalogNotWritableError,
    CatalogUnreadableError,
    connect,
    transaction,
)
from data_catalog.errors import CatalogError
from data_catalog.schema import SCHEMA_VERSION, ensure_schema
from data_catalog.settings import CatalogSettings

__all__ = [
    "SCHEMA_VERSION",
    "CatalogBusyError",
    "CatalogError",
    "CatalogMissingError",
    "CatalogNotWritableError",
    "CatalogUnreadableError",
    "CatalogSettings",
    "connect",
    "ensure_schema",
    "transaction",
]
