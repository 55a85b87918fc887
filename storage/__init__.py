"""Parquet result store (local folder or S3). Depends on pyarrow only; no torch."""

from storage.result_store import ResultStore, StoreUnavailableError, latest_per_config
from storage.schemas import CONFIG_PREFIX, SCHEMA_VERSION, TABLES

__all__ = ["CONFIG_PREFIX", "SCHEMA_VERSION", "TABLES", "ResultStore", "StoreUnavailableError", "latest_per_config"]
