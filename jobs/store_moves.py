"""A catalog and store moved together (a project folder copied to the team's server, renamed,
restored from a backup) keep working: the catalog's paths into a store that is gone are moved to
the store the job was given, once every stored volume is found there."""

from __future__ import annotations

import logging
from pathlib import Path

from data_catalog import CatalogSettings, connect
from data_catalog.store_paths import move_store_paths, recorded_stores

logger = logging.getLogger(__name__)


def follow_moved_store(settings: CatalogSettings) -> int:
    """Point the catalog's store paths at ``settings.store_dir`` where the store they name no
    longer exists and ``settings.store_dir`` holds every volume ingested into it (by the same
    file name); returns how many paths changed. A store that still exists is left alone (two
    stores may serve one catalog), and so is one whose volumes are not all at the new place: a
    read then says which volume is missing, as before."""
    if not settings.catalog_path.is_file():
        return 0
    new = settings.store_dir
    with connect(settings.catalog_path, read_only=True) as con:
        stores = recorded_stores(con)
    moved = {old: paths for old, paths in stores.items()
             if Path(old) != new and not (Path(old) / "volumes").is_dir()}
    changed = 0
    for old, paths in moved.items():
        missing = [p for p in paths if not (new / "volumes" / Path(p).name).is_file()]
        if missing:
            logger.warning("the store %s is gone and %s lacks %d of its %d volumes (e.g. %s); "
                           "paths left as they were", old, new, len(missing), len(paths),
                           Path(missing[0]).name)
            continue
        with connect(settings.catalog_path) as con:
            count = move_store_paths(con, old, str(new))
        logger.warning("the store moved from %s to %s: %d catalog paths now point there", old,
                       new, count)
        changed += count
    return changed
