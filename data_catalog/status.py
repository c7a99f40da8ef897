"""How far the pipeline got for one run: what each stage left in the catalog."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

_STATUS = """
SELECT
    (SELECT count(*) FROM scans)                                        AS scans,
    (SELECT count(*) FROM ingest_errors)                                AS ingest_errors,
    (SELECT any_value(status) FROM runs WHERE run_id = $run_id)         AS run_status,
    (SELECT count(*) FROM scores WHERE run_id = $run_id)                AS scored,
    (SELECT count(*) FROM scores WHERE run_id = $run_id AND recon_path IS NOT NULL
                                                   AND error_path IS NOT NULL) AS with_volumes,
    (SELECT count(*) FROM scores WHERE run_id = $run_id AND latent IS NOT NULL) AS with_latents,
    (SELECT count(*) FROM scores WHERE run_id = $run_id
                                   AND outlier_score IS NOT NULL)       AS with_outlier_score,
    (SELECT any_value(threshold) FROM runs WHERE run_id = $run_id)      AS threshold,
    (SELECT count(*) FROM embeddings WHERE run_id = $run_id)            AS embedded,
    (SELECT count(*) FROM evaluations WHERE run_id = $run_id)           AS evaluations,
    (SELECT count(*) FROM scans s WHERE NOT EXISTS (
        SELECT 1 FROM scores r WHERE r.run_id = $run_id AND r.scan_id = s.scan_id)) AS unscored
"""


@dataclass(frozen=True)
class PipelineStatus:
    """Counts of what ingest, train, score, embed and evaluate wrote for one run."""

    scans: int
    ingest_errors: int
    run_status: str | None
    scored: int
    with_volumes: int
    with_latents: int
    with_outlier_score: int
    threshold: float | None
    embedded: int
    evaluations: int
    unscored: int

    @property
    def trained(self) -> bool:
        return self.run_status == "trained"

    @property
    def scored_all(self) -> bool:
        """Every scan scored, with its outlier score (a catalog scored before schema v3 lacks
        it — the v3 migration clears the older scale — until `ctae score` runs again), and T
        set."""
        return (self.scans > 0 and self.unscored == 0 and self.threshold is not None
                and self.with_outlier_score == self.scored)


def pipeline_status(con: duckdb.DuckDBPyConnection, run_id: str) -> PipelineStatus:
    """What the catalog holds for ``run_id`` and its scans."""
    row = con.execute(_STATUS, {"run_id": run_id}).fetchone()
    names = [d[0] for d in con.description]
    return PipelineStatus(**dict(zip(names, row, strict=True)))
