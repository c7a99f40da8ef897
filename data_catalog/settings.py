"""Where the catalog and the volume store live: the one reader of CTAE_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CATALOG = Path("ctae-data") / "catalog.duckdb"
CATALOG_ENV = "CTAE_CATALOG"
STORE_ENV = "CTAE_STORE"


@dataclass(frozen=True)
class CatalogSettings:
    """The catalog file and the store folder that jobs and the dashboard share.

    The store defaults to a ``store`` folder beside the catalog file.
    """

    catalog_path: Path
    store_dir: Path

    @classmethod
    def resolve(
        cls,
        catalog: Path | str | None = None,
        store: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CatalogSettings:
        """Explicit arguments first, then CTAE_CATALOG / CTAE_STORE, then ./ctae-data/."""
        env = os.environ if env is None else env
        catalog_path = Path(catalog or env.get(CATALOG_ENV) or DEFAULT_CATALOG).expanduser()
        store_dir = Path(store or env.get(STORE_ENV) or catalog_path.parent / "store").expanduser()
        return cls(catalog_path=catalog_path.resolve(), store_dir=store_dir.resolve())

    @property
    def volumes_dir(self) -> Path:
        """Folder of the ingested int16 HU volumes, one ``<scan_id>.npy`` each."""
        return self.store_dir / "volumes"

    @property
    def runs_dir(self) -> Path:
        """Folder of the runs' folders (``run_dir``)."""
        return self.store_dir / "runs"

    @property
    def own_folders(self) -> tuple[Path, Path]:
        """The store's folders that hold only ctae's own arrays: the volumes and the runs (the
        store itself may be a folder that holds other things too)."""
        return self.volumes_dir, self.runs_dir

    def run_dir(self, run_id: str) -> Path:
        """Folder of one run's checkpoint, reconstructions and error volumes."""
        return self.runs_dir / run_id
