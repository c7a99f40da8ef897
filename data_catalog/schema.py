"""The catalog's tables (schema v8) and the migrations that bring any older file up to date.

Every table a run produced carries ``run_id``; scans are known only by a pseudonymous
``scan_id``. Column names follow DESIGN.md's definitions (HU, spacing, pixel count, MSE_m).
"""

from __future__ import annotations

import duckdb

from data_catalog.rollback import rollback

SCHEMA_VERSION = 23

_V1 = [
    """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS scans (
        scan_id VARCHAR PRIMARY KEY,          -- pseudonymous, derived from the source key
        source_kind VARCHAR NOT NULL,         -- dicom | nifti | mha | nrrd
        source_root VARCHAR NOT NULL,         -- the SOURCE argument the scan was found under
        source_path VARCHAR NOT NULL,         -- series folder or file, relative to source_root
        series_uid VARCHAR,                   -- (0020,000E) SeriesInstanceUID; NULL for volume files
        fingerprint VARCHAR NOT NULL,         -- hash of file names, sizes and mtimes: unchanged input is skipped
        content_hash VARCHAR NOT NULL,        -- sha256 of the stored HU array
        manufacturer VARCHAR,
        model VARCHAR,
        kernel VARCHAR,
        slice_thickness_mm DOUBLE,
        orig_size_z INTEGER, orig_size_y INTEGER, orig_size_x INTEGER,
        orig_spacing_z_mm DOUBLE, orig_spacing_y_mm DOUBLE, orig_spacing_x_mm DOUBLE,
        orig_direction DOUBLE[],              -- 9 direction cosines, row-major, as read
        gantry_tilt_deg DOUBLE,
        missing_slices INTEGER,
        duplicate_slices INTEGER,
        reversed_slices BOOLEAN,
        warnings VARCHAR,                     -- '; '-joined notes on what was repaired
        spacing_mm DOUBLE NOT NULL,           -- isotropic spacing of the stored volume
        size_z INTEGER NOT NULL, size_y INTEGER NOT NULL, size_x INTEGER NOT NULL,
        pixel_count BIGINT NOT NULL,          -- voxels of the resampled scan, before padding
        hu_mean DOUBLE, hu_std DOUBLE, hu_min DOUBLE, hu_max DOUBLE, hu_p1 DOUBLE, hu_p99 DOUBLE,
        body_voxels BIGINT,                   -- voxels with HU > -990
        metal_voxels BIGINT,                  -- voxels with HU > 3000
        hu_histogram INTEGER[],               -- counts in ctae_core.stats.HU_HISTOGRAM_EDGES bins
        volume_path VARCHAR NOT NULL,         -- int16 HU .npy, (Z, Y, X)
        ingested_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS ingest_errors (
        source_key VARCHAR PRIMARY KEY,       -- hash of source_root, source_path and series_uid
        source_root VARCHAR NOT NULL,
        source_path VARCHAR NOT NULL,
        series_uid VARCHAR,
        reason VARCHAR NOT NULL,              -- short code: not_ct, too_few_slices, missing_slices, unreadable, ...
        message VARCHAR NOT NULL,             -- what was wrong and what to do
        recorded_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY,           -- the name given to `ctae train --run`
        preset VARCHAR,
        status VARCHAR NOT NULL,              -- training | trained | failed
        config_json VARCHAR NOT NULL,         -- the full TrainConfig, for reproducibility
        checkpoint_path VARCHAR,
        spacing_mm DOUBLE,                    -- model input spacing
        pad_size_z INTEGER, pad_size_y INTEGER, pad_size_x INTEGER,
        norm_mean DOUBLE, norm_std DOUBLE,    -- eq. 3.1, over all training voxels (HU)
        epochs_done INTEGER DEFAULT 0,
        best_val_loss DOUBLE,
        mean_baseline_val_mse DOUBLE,         -- validation MSE of predicting the training mean
        threshold_rule VARCHAR,               -- mean_std | mad | percentile | pvalue
        threshold_params_json VARCHAR,
        threshold DOUBLE,                     -- T, on the run's score (MSE_m by default)
        threshold_score VARCHAR,              -- which score T applies to: outlier_score | mse_m | mse | mse_region
        embed_params_json VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp,
        updated_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS splits (
        run_id VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,               -- train | val | test
        PRIMARY KEY (run_id, scan_id)
    )""",
    """
    CREATE TABLE IF NOT EXISTS train_history (
        run_id VARCHAR NOT NULL,
        epoch INTEGER NOT NULL,
        train_loss DOUBLE,
        val_loss DOUBLE,
        learning_rate DOUBLE,
        epoch_s DOUBLE,
        volumes_per_s DOUBLE,
        recorded_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, epoch)
    )""",
    """
    CREATE TABLE IF NOT EXISTS scores (
        run_id VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        split VARCHAR NOT NULL,               -- train | val | test | unseen (ingested after training)
        mse DOUBLE,                           -- over the padded volume (eq. 3.3)
        mse_region DOUBLE,                    -- over the scan's own region before padding
        mse_m DOUBLE,                         -- over body-mask voxels (HU > -990)
        is_outlier BOOLEAN,                   -- under the run's threshold rule
        max_error_z INTEGER, max_error_y INTEGER, max_error_x INTEGER,
        error_fraction DOUBLE,                -- body voxels whose |error| exceeds the run's level
        recon_path VARCHAR,                   -- reconstruction in HU, int16 .npy (or NULL)
        error_path VARCHAR,                   -- |error| in HU, int16 .npy (or NULL)
        latent FLOAT[],                       -- the encoder's latent vector
        scored_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, scan_id)
    )""",
    """
    CREATE TABLE IF NOT EXISTS scan_failures (
        run_id VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        job VARCHAR NOT NULL,                 -- score | embed
        message VARCHAR NOT NULL,
        recorded_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, scan_id, job)
    )""",
    """
    CREATE TABLE IF NOT EXISTS embeddings (
        run_id VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        umap_x DOUBLE NOT NULL,
        umap_y DOUBLE NOT NULL,
        cluster INTEGER NOT NULL,             -- DBSCAN label, -1 = noise
        PRIMARY KEY (run_id, scan_id)
    )""",
    """
    CREATE TABLE IF NOT EXISTS evaluations (
        run_id VARCHAR NOT NULL,
        method VARCHAR NOT NULL,              -- mse | mse_m | mse_region | isolation_forest | histogram_mahalanobis
        outlier_type VARCHAR NOT NULL,        -- 'all' or one planted type
        n_inliers INTEGER,
        n_outliers INTEGER,
        auroc DOUBLE,
        average_precision DOUBLE,
        precision_at_t DOUBLE,
        recall_at_t DOUBLE,
        spearman_pixel_count DOUBLE,          -- among inliers: the size bias
        truth_path VARCHAR,
        evaluated_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, method, outlier_type)
    )""",
    """
    CREATE TABLE IF NOT EXISTS labels (
        label_id VARCHAR PRIMARY KEY,
        scan_id VARCHAR NOT NULL,
        reviewer VARCHAR NOT NULL,
        verdict VARCHAR NOT NULL,             -- inlier | outlier | unsure
        causes VARCHAR[],                     -- DESIGN.md cause tags
        note VARCHAR,
        run_id VARCHAR,                       -- the run the reviewer was looking at
        created_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS exports (
        export_id VARCHAR PRIMARY KEY,
        who VARCHAR NOT NULL,
        run_id VARCHAR,
        filter_json VARCHAR NOT NULL,
        row_count INTEGER NOT NULL,
        format VARCHAR NOT NULL,              -- csv | txt | parquet
        destination VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    )""",
    """
    CREATE TABLE IF NOT EXISTS job_runs (
        job_id VARCHAR PRIMARY KEY,
        job VARCHAR NOT NULL,
        args_json VARCHAR,
        status VARCHAR NOT NULL,              -- running | done | failed (| interrupted, v4)
        counts_json VARCHAR,
        started_at TIMESTAMP DEFAULT current_timestamp,
        finished_at TIMESTAMP
    )""",
]

# v2: the run's outlier score and the four kinds of evidence it combines
# (ctae_core/outlier_score.py); NULL for rows scored before v2 until `ctae score` runs again.
_V2 = [
    f"ALTER TABLE scores ADD COLUMN IF NOT EXISTS {column} DOUBLE"
    for column in ("mse_m_z", "latent_z", "histogram_z", "tissue_z", "outlier_score")
]

# v3: how each scan was acquired (ctae_core/acquisition.py; NULL until `ctae score` measures
# the stored volume) and the outlier score's five new kinds of evidence. The score is now the
# strongest evidence, not Fisher's sum: v2 scores are cleared, so nothing shows a number of the
# old scale; `ctae score` recomputes them.
_V3 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS noise_hu DOUBLE",        # image noise SD (HU); NaN: none measurable
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS body_edge_mm DOUBLE",    # mm of body on the image border, per slice
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS body_profile DOUBLE[]",  # outline extent per direction / mean; [] no body
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS streak_contrast DOUBLE",  # SNR of the strongest straight line (v13: through the body)
    *(f"ALTER TABLE scores ADD COLUMN IF NOT EXISTS {column} DOUBLE"
      for column in ("contrast_z", "shape_z", "noise_z", "streak_z", "integrity_z")),
    "UPDATE scores SET outlier_score = NULL",
]

# v4: which process runs a job, so the next job can mark the rows of killed ones `interrupted`
# (status: running | done | failed | interrupted). Rows from before v4 carry no process.
_V4 = [
    "ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS pid INTEGER",            # the job's process id
    "ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS host VARCHAR",           # the machine it ran on
    "ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS process_start VARCHAR",  # its start tick: pid reuse
]

# v5: team review. The dashboard writes review events to the review journal beside the catalog
# (data_catalog/journal.py, never blocked by a job); every read-write open of the catalog copies
# new journal rows into these tables, so exports and SQL see them.
_V5 = [
    "ALTER TABLE labels ADD COLUMN IF NOT EXISTS session_id VARCHAR",  # NULL: before v5
    """
    CREATE TABLE IF NOT EXISTS review_sessions (
        session_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        created_by VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        run_id VARCHAR,                       -- the run whose scans were chosen
        source VARCHAR NOT NULL,              -- how the scans were chosen, in words
        reads_per_scan INTEGER NOT NULL,      -- 1, or 2+ for double reads by distinct reviewers
        show_others BOOLEAN NOT NULL,         -- reviewers see each other's reads while open
        show_model BOOLEAN NOT NULL,          -- reviewers see the model's verdict while open
        status VARCHAR NOT NULL,              -- open | closed
        closed_at TIMESTAMP
    )""",
    """
    CREATE TABLE IF NOT EXISTS session_assignments (
        session_id VARCHAR NOT NULL,
        reviewer VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,            -- place in the reviewer's shuffled queue
        PRIMARY KEY (session_id, reviewer, scan_id)
    )""",
    """
    CREATE TABLE IF NOT EXISTS adjudications (
        adjudication_id VARCHAR PRIMARY KEY,
        session_id VARCHAR NOT NULL,
        scan_id VARCHAR NOT NULL,
        verdict VARCHAR NOT NULL,             -- the final verdict, apart from the reads
        causes VARCHAR[],
        note VARCHAR,
        adjudicator VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        event_id VARCHAR PRIMARY KEY,
        who VARCHAR NOT NULL,
        action VARCHAR NOT NULL,              -- label | adjudicate | create_session | close_session | ...
        target VARCHAR,                       -- the scan, session or user acted on
        before_json VARCHAR,
        after_json VARCHAR,
        created_at TIMESTAMP NOT NULL
    )""",
]


# v6: every export is a snapshot (data_catalog/snapshots.py): its manifest, the hash of its
# list, and the state of every scan of the run at that moment (included or not, and why), so
# the list can be re-created byte for byte and two snapshots compared scan by scan.
_V6 = [
    "ALTER TABLE exports ADD COLUMN IF NOT EXISTS content_hash VARCHAR",   # sha256 of the canonical list
    "ALTER TABLE exports ADD COLUMN IF NOT EXISTS manifest_json VARCHAR",  # filters, run, model, T, label state
    """
    CREATE TABLE IF NOT EXISTS export_items (
        export_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,            -- row order of the run's scan table at export
        scan_id VARCHAR NOT NULL,
        included BOOLEAN NOT NULL,            -- passed the export's filter
        split VARCHAR,
        score DOUBLE,                         -- the run's thresholded score
        mse_m DOUBLE,
        is_outlier BOOLEAN,
        cluster INTEGER,
        label VARCHAR,                        -- current verdict
        causes VARCHAR,
        reviewers VARCHAR,                    -- 'name: verdict, ...' (each reviewer's current label)
        strongest_evidence VARCHAR,           -- the evidence the outlier score is
        strongest_z DOUBLE,
        adjudication VARCHAR,                 -- the admin's adjudicated verdict (NULL: none)
        PRIMARY KEY (export_id, scan_id)
    )""",
]

# v7: the share of a cohort's inliers each method flags at its T (ctae evaluate), reported beside
# precision and recall so that T's promised false-alarm rate is checked on every evaluation.
_V7 = [
    "ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS false_alarm_rate DOUBLE",
]

# v8: voxel-level outputs of a run (ctae_core/anomaly_map.py): where each scan's anomaly map is
# hottest (on the stored grid, in voxels and mm from the first voxel), that region's volume, and
# the map's peak — the local-error score — with its calibrated evidence.
_V8 = [
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_z INTEGER",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_y INTEGER",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_x INTEGER",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_z_mm DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_y_mm DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_x_mm DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS hot_volume_ml DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_hu DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_z DOUBLE",
]

# v9: ring artefacts measured on every scan (how consistently one radius about the image centre
# is brighter or darker all the way round) and the run's ring evidence. Scans measured before v9
# have no ring_contrast; `ctae score` measures them (and rescores).
_V9 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS ring_contrast DOUBLE",  # ring strength; NaN: no tissue to read
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS ring_z DOUBLE",
]

# v10: compact metal measured at ingest on the acquired grid (ctae_core/native_metal.py), before
# resampling to 3 mm averages a 1–3 mm snap or valve ring into bone-like HU, and the run's metal
# evidence. Scans ingested before v10 have none (their evidence is left out) until re-ingested.
_V10 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS native_metal_mm3 DOUBLE",  # compact dense volume away from bone
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS metal_z DOUBLE",
]

# v11: small dense objects measured at ingest on the acquired grid (ctae_core/native_metal.py):
# on or outside the skin (electrodes, leads, cables) and inside the body (a valve ring, a clip),
# and the run's evidence of each. Scans ingested before v11 have none until re-ingested.
_V11 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS skin_object_mm3 DOUBLE",  # dense, off bone, by outside air
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS inner_object_mm3 DOUBLE",  # dense, off bone, inside the body
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS skin_object_z DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS inner_object_z DOUBLE",
]

# v12: the longest dense object away from bone, measured at ingest on the acquired grid
# (ctae_core/native_metal.py: a cable or a lead runs for tens of centimetres), and the run's
# evidence of it. Scans ingested before v12 have none until re-ingested.
_V12 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS longest_object_mm DOUBLE",  # dense, off bone, its longest side
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS long_object_z DOUBLE",
]

# v13: streak_contrast now measures the strongest straight line through the body's soft tissue
# (ctae_core/acquisition.py), not in the air around it; the values of the earlier measure are
# cleared, so that the next `ctae score` measures every scan anew (one meaning per column).
_V13 = [
    "UPDATE scans SET streak_contrast = NULL",
]

# v14: streak_contrast now compares each plane's lines with the same lines 6 mm above and below
# (a streak changes from plane to plane, anatomy's straight edges run on); cleared again so that
# the next `ctae score` measures every scan anew.
_V14 = [
    "UPDATE scans SET streak_contrast = NULL",
]

# v15: ring_contrast now reads only the radii whose tissue reaches three quarters of the way round
# (a radius through a wide body's flanks alone is no ring), and streak_contrast searches only the
# planes with a plane 6 mm away both above and below; both are cleared so that the next
# `ctae score` measures every scan anew.
_V15 = [
    "UPDATE scans SET ring_contrast = NULL, streak_contrast = NULL",
]

# v16: noise_hu is now measured with the grouped median of the voxel differences (continuous,
# where the plain median of whole-HU differences moved in steps of ~1 HU); cleared so that the
# next `ctae score` measures every scan anew.
_V16 = [
    "UPDATE scans SET noise_hu = NULL",
]

# v17: image noise measured at ingest on the acquired grid (ctae_core/noise.py
# ``native_noise_estimate``), before resampling to 3 mm averages it away; the run's noise evidence
# reads it once every scored scan has it. Scans ingested before v17 have none until re-ingested.
_V17 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS native_noise_hu DOUBLE",  # noise SD (HU) on the acquired grid
]

# v18: how much of the body lies on the edge of the reconstructed field (ctae_core/acquisition.py
# ``field_edge_mm``: next to padding outside the reconstruction circle), measured by the next
# `ctae score` from the stored volume, and the run's evidence of it (``fov_z``).
_V18 = [
    "ALTER TABLE scans ADD COLUMN IF NOT EXISTS field_edge_mm DOUBLE",  # mm of body on padding, per slice
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS fov_z DOUBLE",
]

# v19: the anomaly map's peak inside the patient and in the body's outer shell
# (ctae_core/error_regions.py), each judged among its own region's peaks for the local error.
# Scans scored before v19 have neither until `ctae score` measures them from the stored maps.
_V19 = [
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_interior_hu DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_shell_hu DOUBLE",
]

# v20: each region's z of the local error (ctae_core/outlier_score.py ``local_error_region_z``):
# where the local error lies (inside the patient or on its shell), for the viewer and for placing
# the hottest region. Written with the evidence: every `ctae score` (and --rethreshold-only).
_V20 = [
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_interior_z DOUBLE",
    "ALTER TABLE scores ADD COLUMN IF NOT EXISTS local_error_shell_z DOUBLE",
]

_V21 = [  # `ctae evaluate`'s run score per base of the truth file (the volume a scan was made from)
    """
    CREATE TABLE IF NOT EXISTS evaluation_bases (
        run_id VARCHAR NOT NULL,
        base VARCHAR NOT NULL,
        n_inliers INTEGER,
        n_outliers INTEGER,
        auroc_within DOUBLE,                  -- the base's outliers against its own inliers
        auroc_cohort DOUBLE,                  -- the base's outliers against every inlier
        recall_at_t DOUBLE,
        inliers_flagged INTEGER,
        truth_path VARCHAR,
        evaluated_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (run_id, base)
    )""",
]

# v22: scans removed from the catalog (`ctae remove`: files deleted, a patient's consent withdrawn, a
# series not wanted), with where they were found and what was stored, so that an export that
# listed them is still written again byte for byte (data_catalog/snapshots.py) and the catalog
# says what left it, when and why. Their labels and snapshots stay where they are.
_V22 = [
    """
    CREATE TABLE IF NOT EXISTS removed_scans (
        scan_id VARCHAR PRIMARY KEY,
        source_kind VARCHAR, source_root VARCHAR, source_path VARCHAR, series_uid VARCHAR,
        volume_path VARCHAR,                  -- deleted with the scan
        spacing_mm DOUBLE, pixel_count BIGINT, content_hash VARCHAR,
        reason VARCHAR NOT NULL,              -- gone | named | under | copy: how `ctae remove` chose it
        job_id VARCHAR,                       -- the `ctae remove` of job_runs
        removed_by VARCHAR,                   -- the user who ran it
        removed_at TIMESTAMP DEFAULT current_timestamp
    )""",
]

# v23: ring_contrast now reads the air around the body as well as its tissue (a detector element's
# ring crosses the whole reconstructed field, and beyond a body's short half-axis only the air
# holds it all the way round); cleared so that the next `ctae score` measures every scan anew.
_V23 = [
    "UPDATE scans SET ring_contrast = NULL",
]

MIGRATIONS: dict[int, list[str]] = {
    1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8, 9: _V9, 10: _V10, 11: _V11, 12: _V12,
    13: _V13, 14: _V14, 15: _V15, 16: _V16, 17: _V17, 18: _V18, 19: _V19, 20: _V20, 21: _V21,
    22: _V22, 23: _V23,
}


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version recorded in the file, 0 for a new file."""
    # fetchall, not fetchone: a result read only in part stays open on the connection, and
    # DuckDB then refuses the caller's next call that is not a query (``register``)
    (exists,), = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()
    if not exists:
        return 0
    (version,), = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return version


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The file's tables and views, in name order."""
    return [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the file's version, all in one transaction.

    A new file runs every numbered migration in order, as an old file runs the ones it lacks,
    so both end with the same tables (tests/data_catalog/test_schema.py); one commit instead of
    one per version spares a new catalog ~50 ms of a one-series ingest, and a migration that
    fails leaves the file at its old version instead of half-way.
    """
    version = current_version(con)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"catalog schema v{version} is newer than this ctae understands (v{SCHEMA_VERSION}); "
            "upgrade ctae"
        )
    if version == SCHEMA_VERSION:
        return SCHEMA_VERSION
    # connection.transaction's BEGIN … COMMIT, written out: connection imports this module, and
    # the layers allow no import cycle
    con.execute("BEGIN TRANSACTION")
    try:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [target])
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")
    return SCHEMA_VERSION
