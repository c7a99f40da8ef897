"""Export: filter the run's scans, see the live count, download CSV / TXT / Parquet / MONAI
datalist / NIfTI or nnU-Net bundle; each export is a logged snapshot, and two snapshots can be
compared. `ctae export` applies the same ExportFilter from the command line."""

from __future__ import annotations

import streamlit as st

from dashboard import data, state
from data_catalog import CatalogBusyError
from data_catalog.export_formats import FILE_SUFFIX, FORMATS
from data_catalog.filters import LABEL_CHOICES, SPLITS, ExportFilter, filter_mask
from data_catalog.review import CAUSE_TAGS

st.title("Export a training list")
run_id, scans = state.require_scores()
catalog = state.catalog()

c1, c2, c3 = st.columns(3)
split = c1.multiselect("Split", SPLITS, key="ex_split", placeholder="any")
flag = c2.selectbox("Flag", ["any", "outlier", "inlier"], key="ex_flag")
label = c3.multiselect("Current label", LABEL_CHOICES, key="ex_label", placeholder="any")
cause = c1.multiselect("Cause", CAUSE_TAGS, key="ex_cause", placeholder="any")
clusters = sorted(int(c) for c in scans["cluster"].dropna().unique())
cluster = c2.multiselect("Cluster", clusters, key="ex_cluster", placeholder="any")
exclude = c3.toggle(
    "Exclude outliers",
    key="ex_exclude",
    value=False,
    help="Drop scans labelled outlier, and flagged scans nobody labelled inlier",
)
copies = int(scans["content_hash"].duplicated().sum())
drop_copies = c3.toggle(
    "One scan per copy",
    key="ex_drop_copies",
    value=False,
    disabled=copies == 0,
    help="Of scans whose stored voxels are the same (one series stored twice), keep the first "
    f"by source path ({copies} copies in this run)",
)
lo, hi = float(scans["score"].min()), float(scans["score"].max())
score = (lo, hi)
if hi > lo:
    score = c1.slider("Score range", lo, hi, (lo, hi), key="ex_score", format="%.4f")
plo, phi = int(scans["pixel_count"].min()), int(scans["pixel_count"].max())
pixels = (plo, phi)
if phi > plo:
    pixels = c2.slider("Pixel-count range", plo, phi, (plo, phi), key="ex_pixels")
fmt = c3.radio(
    "Format", FORMATS, key="ex_format", horizontal=True,
    help="csv / parquet: the list with its reasons (verdict, strongest evidence, labels, "
    "reviewers, adjudication); txt: source paths; monai: a datalist JSON of the source series; "
    "nifti / nnunet: a zip of the stored volumes (and anomaly maps) as NIfTI",
)

filt = ExportFilter(
    split=tuple(split),
    flag=None if flag == "any" else flag,
    label=tuple(label),
    cause=tuple(cause),
    cluster=tuple(cluster),
    score_min=score[0] if score[0] > lo else None,
    score_max=score[1] if score[1] < hi else None,
    pixel_count_min=pixels[0] if pixels[0] > plo else None,
    pixel_count_max=pixels[1] if pixels[1] < phi else None,
    exclude_outliers=exclude,
    drop_copies=drop_copies,
)
count = int(filter_mask(scans, filt).sum())
st.metric("Scans matching", f"{count:,}", f"of {len(scans):,}", delta_color="off")

who = state.reviewer()
if st.button(
    "Prepare the export file",
    key="ex_prepare",
    disabled=count == 0 or not who,
    help=None if who else "Sign in first: exports are logged with your name",
):
    try:
        payload, rows, export_id = data.prepare_export(catalog, run_id, filt, fmt, who)
        st.session_state["ex_payload"] = (payload, fmt, rows, export_id)
    except CatalogBusyError:
        st.warning("The catalog is busy (a job is writing); try again in a moment.")
    except ValueError as err:
        st.warning(str(err))
if not who:
    st.caption("Sign in first: every export is logged with your name.")
if prepared := st.session_state.get("ex_payload"):
    payload, pfmt, rows, export_id = prepared
    suffix = FILE_SUFFIX.get(pfmt, "zip")
    st.download_button(
        f"Download {rows:,} rows ({pfmt.upper()})",
        payload,
        key="ex_download",
        file_name=f"ctae-{run_id}-{export_id[:16]}.{suffix}",
        on_click="ignore",
        mime={"csv": "text/csv", "txt": "text/plain", "json": "application/json"}.get(
            suffix, "application/octet-stream"
        ),
    )
    st.caption(f"Snapshot `{export_id}`: `ctae export --recreate {export_id} --out FILE` "
               "writes it again, byte for byte.")

st.subheader("Export log")
st.dataframe(data.export_log(catalog), hide_index=True, width="stretch")

st.subheader("What changed between two snapshots")
snapshots = data.snapshots(catalog)
if len(snapshots) < 2:
    st.caption("Two exports are needed to compare; every export is a snapshot.")
else:
    names = {
        row.export_id: f"{row.created_at:%Y-%m-%d %H:%M:%S} · {row.who} · {row.run_id} · "
        f"{row.row_count:,} rows · {row.format}"
        for row in snapshots.itertuples()
    }
    ids = list(names)
    d1, d2 = st.columns(2)
    a = d1.selectbox("Snapshot A (before)", ids, index=1, key="ex_diff_a", format_func=names.get)
    b = d2.selectbox("Snapshot B (after)", ids, index=0, key="ex_diff_b", format_func=names.get)
    summary, changes = data.snapshot_diff(catalog, a, b)
    st.markdown(
        f"**{summary['added']:,} added · {summary['removed']:,} removed · "
        f"{summary['changed']:,} changed** (rows {summary['rows'][0]:,} → "
        f"{summary['rows'][1]:,}, labels {summary['labels'][0]:,} → {summary['labels'][1]:,})"
        + (f"; the manifests differ in {', '.join(summary['differs'])}" if summary["differs"] else "")
    )
    st.dataframe(changes, hide_index=True, width="stretch", key="ex_diff_table")
