"""The explorer's density layer: counts per cell and the scans inside a box or lasso."""

from __future__ import annotations

import numpy as np

from dashboard.density import bin_counts, in_selection


def test_every_finite_point_lands_in_the_cell_that_holds_it():
    x = np.array([0.0, 10.0, 10.0, 5.0, np.nan, 2.4])
    y = np.array([0.0, 1.0, 1.0, 0.5, 0.3, np.inf])
    grid = bin_counts(x, y, cells=(4, 2))
    assert grid.n_binned == 4 and grid.counts.sum() == 4
    assert grid.counts.shape == (2, 4)
    np.testing.assert_array_equal(grid.x_centres, [1.25, 3.75, 6.25, 8.75])
    np.testing.assert_array_equal(grid.y_centres, [0.25, 0.75])
    # (0, 0) bottom-left; (5, 0.5) on inner edges → upper cells; (10, 1) top edge → last cell
    np.testing.assert_array_equal(grid.counts, [[1, 0, 0, 0], [0, 0, 1, 2]])


def test_log_cells_are_equal_in_log10_and_drop_what_a_log_axis_cannot_show():
    y = np.array([0.01, 0.1, 1.0, 10.0, 0.0, -3.0])
    grid = bin_counts(np.ones(6), y, log_y=True, cells=(1, 3))
    assert grid.n_binned == 4
    np.testing.assert_allclose(np.log10(grid.y_centres), [-1.5, -0.5, 0.5])
    np.testing.assert_array_equal(grid.counts[:, 0], [1, 1, 2])


def test_one_value_gets_a_cell_around_it():
    grid = bin_counts(np.full(3, 7.0), np.full(3, 2.0), cells=(3, 3))
    assert grid.counts.sum() == 3
    assert grid.counts[1, 1] == 3 and grid.x_centres[1] == 7.0


def test_echarts_brush_areas_take_the_points_inside():
    x = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    y = np.array([1.0, 2.0, 3.0, 4.0, 1.2])
    rect = {"brush_index": 0, "brush_type": "rect", "coord_range": [[3.5, 1.5], [1.5, 3.5]]}
    polygon = {"brush_index": 1, "brush_type": "polygon", "coord_range": [[0, 0], [5, 0], [0, 5]]}
    event = {"selection": {"selected": [], "areas": [rect]}}
    np.testing.assert_array_equal(in_selection(x, y, event), [False, True, True, False, False])
    event = {"selection": {"selected": [], "areas": [polygon]}}
    np.testing.assert_array_equal(in_selection(x, y, event), [True, True, False, False, True])
    event = {"selection": {"selected": [], "areas": [rect, polygon]}}
    np.testing.assert_array_equal(in_selection(x, y, event), [True, True, True, False, True])
    lines = {"brush_type": "lineX", "coord_range": [0, 5]}  # not offered by the toolbox
    assert not in_selection(x, y, {"selection": {"areas": [lines]}}).any()
    assert not in_selection(x, y, None).any()
    assert not in_selection(x, y, {"selection": {"selected": []}}).any()
