"""The scan viewer page: images, queue, facts (labels: test_my_reviews.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.dashboard.conftest import figures, values


def _open_selection(open_page, settings, scan_ids, reviewer="dana"):
    at = open_page(settings, "overview", reviewer=reviewer)
    at.session_state["view_mode"] = "server-rendered"  # the interactive view has its own tests
    at.session_state["selected_scans"] = scan_ids
    at.session_state["queue_source"] = "current selection"
    at.switch_page("app_pages/viewer.py").run()
    assert not at.exception
    return at


def _facts(at) -> dict[str, str]:
    """The scan facts table (Markdown, in its expander, drawn once opened) as fact -> value."""
    assert not [m for m in at.expander[0].markdown if m.value.startswith("| fact |")]
    at.session_state["facts_open"] = True
    at.run()
    (table,) = [m.value for m in at.expander[0].markdown if m.value.startswith("| fact |")]
    rows = [line[2:-2].split(" | ") for line in table.splitlines()[2:]]
    return {fact: value for fact, value in rows}


def test_viewer_draws_three_planes_of_scan_reconstruction_and_error(catalog, open_page):
    at = _open_selection(open_page, catalog, ["syn0000001", "syn0000002"])
    assert at.subheader[0].value == "Scan `syn0000001`"
    assert len(at.get("image")) == 9  # 3 planes × (original + overlay, reconstruction, |error|)
    assert "6 mm grid (original 3 mm)" in at.caption[0].value
    assert figures(at) == []  # the HU histogram is drawn on demand (Plotly's bundle is large)
    at.toggle(key="hu_hist_shown").set_value(True).run()
    (hist,) = figures(at)
    scan, dataset = (values(t["y"]) for t in hist["data"][::-1])
    assert np.isclose(scan.sum(), 1.0) and np.isclose(dataset.sum(), 1.0)
    facts = _facts(at)
    assert facts["size_z"] == "24" and facts["spacing_mm"] == "3"
    at.slider(key="slice_axial_syn0000001").set_value(3).run()
    at.selectbox(key="window").set_value("custom").run()
    at.number_input(key="win_w").set_value(1500.0).run()
    assert not at.exception and len(at.get("image")) == 9
    at.button(key="next").run()
    at.button(key="next").click().run()
    assert at.subheader[0].value == "Scan `syn0000002`"


def test_evidence_caption_names_every_kind_and_the_strongest():
    import pandas as pd

    from ctae_core.outlier_score import EVIDENCE
    from dashboard.viewer_parts import EVIDENCE_NAMES, evidence_caption

    assert tuple(EVIDENCE_NAMES) == EVIDENCE
    scan = pd.Series({name: 0.5 for name in EVIDENCE} | {"shape_z": 6.2, "noise_z": None})
    caption = evidence_caption(scan)
    assert caption.startswith(f"Strongest evidence: {EVIDENCE_NAMES['shape_z']} (z +6.2;")
    assert "noise_z" not in caption
    # MSE_m for its size is shown but not scored: a larger z never names what the score is
    caption = evidence_caption(pd.concat([scan.drop("mse_m_z"), pd.Series({"mse_m_z": 9.0})]))
    assert caption.startswith(f"Strongest evidence: {EVIDENCE_NAMES['shape_z']} (z +6.2;")
    assert "mse_m_z +9.0" in caption
    assert evidence_caption(pd.Series({"mse_m": 0.3})) is None
    # the local error says where it lies, by the two regions' z (v20), where the run has them
    local = scan.drop(["shape_z", "local_error_z"]).to_dict() | {"local_error_z": 5.0, "shape_z": 0.5}
    assert EVIDENCE_NAMES["local_error_z"] in evidence_caption(pd.Series(local))
    inside = evidence_caption(pd.Series(local | {"local_error_interior_z": 5.2, "local_error_shell_z": 1.1}))
    assert inside.startswith("Strongest evidence: a local object the model did not reproduce, inside the "
                             "patient (the interior's peak z +5.2, the shell's +1.1;")
    outside = evidence_caption(pd.Series(local | {"local_error_interior_z": 0.3, "local_error_shell_z": 5.2}))
    assert "on the patient's outer shell" in outside and "inside the patient" not in outside
    # three kinds at z 3.2, none past T alone: the caption names the three that decide the score
    misfiled = pd.Series({name: 0.0 for name in EVIDENCE}
                         | {"histogram_z": 3.2, "tissue_z": 3.2, "shape_z": 3.2})
    caption = evidence_caption(misfiled)
    assert caption.startswith("Strongest evidence together: ")
    for name in ("histogram_z", "tissue_z", "shape_z"):
        assert EVIDENCE_NAMES[name] in caption and f"{name} " not in caption


def test_reviewers_never_see_source_paths(catalog, open_page):
    facts = {}
    for role in ("admin", "reviewer"):
        at = open_page(catalog, "overview", reviewer=f"{role}1", role=role)
        at.session_state["selected_scans"] = ["syn0000001"]
        at.session_state["queue_source"] = "current selection"
        at.switch_page("app_pages/viewer.py").run()
        assert not at.exception
        facts[role] = set(_facts(at))
        history = [c.value for c in at.expander[0].caption].count("Label history (newest first)")
        assert history == (role == "admin")  # in the opened expander, for admins only
        if role == "admin":
            assert len(at.expander[0].dataframe[0].value) == 2  # syn0000001's two labels
    assert {"source_path", "series_uid"} <= facts["admin"]
    assert not {"source_path", "series_uid"} & facts["reviewer"]


def test_a_map_on_the_stored_grid_opens_the_server_view_at_its_hottest_region(catalog, open_page):
    # a 6 mm run's map made on the stored 3 mm grid (stop 34): its peak is a stored voxel, not
    # a 6 mm one (read at 6 mm, slice 20 of 24 would be 41, past the scan's end)
    from data_catalog import connect

    with connect(catalog.catalog_path, read_only=True) as con:
        volume_path, error_path = con.execute(
            "SELECT s.volume_path, sc.error_path FROM scans s JOIN scores sc USING (scan_id) "
            "WHERE scan_id = 'syn0000001'").fetchone()
    shape = np.load(volume_path).shape
    amap = np.zeros(shape, np.int16)
    amap[20, 5:8, 30:33] = 400  # the hottest region
    amap[20, 6, 31] = 500
    np.save(error_path, amap)
    at = _open_selection(open_page, catalog, ["syn0000001"])
    starts = [at.slider(key=f"slice_{plane}_syn0000001").value for plane in ("axial", "coronal", "sagittal")]
    assert shape[0] == 24 and starts == [20, 6, 31]


def test_the_facts_give_the_noise_the_evidence_reads_beside_the_stored_grids():
    # the noise evidence reads the noise measured on the acquired grid (v17); the stored 3 mm
    # volume's, which mostly measures anatomy, stays beside it
    from dashboard.viewer_parts import facts_table, scan_facts

    scan = pd.Series({"noise_z": 4.2, "native_noise_hu": 131.04, "noise_hu": 78.4, "source_path": "p"})
    table = scan_facts(scan).set_index("fact")["value"]
    assert table["native_noise_hu"] == "131.04" and table["noise_hu"] == "78.4"
    assert list(table.index).index("native_noise_hu") < list(table.index).index("noise_hu")
    assert "source_path" not in table.index  # admins only
    assert "| native_noise_hu | 131.04 |" in facts_table(scan_facts(scan))


def test_a_scan_one_voxel_thin_is_drawn_with_no_slider_on_that_axis(catalog, open_page):
    # 8 slices of 0.3 mm stored at 3 mm is one axial slice: Streamlit refuses a slider whose ends
    # are equal, and until stop 56 the viewer ended in that error
    from data_catalog import connect

    with connect(catalog.catalog_path) as con:
        volume_path, recon_path, error_path = con.execute(
            "SELECT s.volume_path, sc.recon_path, sc.error_path FROM scans s JOIN scores sc "
            "USING (scan_id) WHERE scan_id = 'syn0000001'").fetchone()
        con.execute("UPDATE scans SET size_z = 1 WHERE scan_id = 'syn0000001'")
    for path in (volume_path, recon_path, error_path):
        np.save(path, np.load(path)[:1])
    at = _open_selection(open_page, catalog, ["syn0000001"])
    assert not at.exception and len(at.get("image")) == 9
    assert "axial slice: 1 slice" in [c.value for c in at.caption]
    assert at.slider(key="slice_coronal_syn0000001").max > 0  # the other planes still slide
    assert not [s for s in at.slider if s.key == "slice_axial_syn0000001"]


def test_a_header_value_is_shown_as_written_never_as_a_link_or_a_picture():
    # manufacturer, kernel and model come from the scan's own headers: until stop 56 a value
    # such as ![](http://host/p.png) made every reviewer's browser fetch that picture (seen in
    # Chromium: the request left, and an address became a link); Plotly drew <a href> as one
    from dashboard.charts import category_of
    from dashboard.viewer_parts import facts_table

    hostile = "![p](http://127.0.0.1:8999/p.png) [l](https://x.invalid) www.x.invalid a|b `c`"
    facts = pd.DataFrame({"fact": ["manufacturer", "kernel", "noise_hu"],
                          "value": [hostile, "B70f", "131.04"]})
    rows = facts_table(facts).splitlines()
    assert rows[2] == ("| manufacturer | `` ![p](http://127.0.0.1:8999/p.png) [l](https://x.invalid) "
                       "www.x.invalid a\\|b `c` `` |")  # one code span: no link, image or markup
    assert rows[3:] == ["| kernel | B70f |", "| noise_hu | 131.04 |"]  # plain values stay plain
    assert facts_table(pd.DataFrame({"fact": ["kernel"], "value": ["www.x.invalid"]})).endswith(
        "| kernel | ` www.x.invalid ` |")
    scans = pd.DataFrame({"manufacturer": ["<a href='http://x.invalid'>SIEMENS</a>", None]})
    assert list(category_of(scans, "manufacturer")) == [
        "&lt;a href=&#x27;http://x.invalid&#x27;&gt;SIEMENS&lt;/a&gt;", "unknown"]


def test_a_damaged_stored_volume_is_named_in_either_view_never_a_traceback(catalog, open_page):
    # until stop 57 the interactive view ended in numpy's "mmap length is greater than file
    # size", which named no file
    from data_catalog import connect

    with connect(catalog.catalog_path, read_only=True) as con:
        (volume_path,) = con.execute(
            "SELECT volume_path FROM scans WHERE scan_id = 'syn0000001'").fetchone()
    with open(volume_path, "r+b") as handle:
        handle.truncate(400)
    at = _open_selection(open_page, catalog, ["syn0000001"])
    said = [w.value for w in at.warning]
    assert any(f"{volume_path}: stored volume is truncated" in w for w in said), said
    at.session_state["view_mode"] = "interactive"
    at.run()
    assert not at.exception
    assert any(w.value.startswith(f"Original: {volume_path}: stored volume is truncated")
               for w in at.warning), [w.value for w in at.warning]
