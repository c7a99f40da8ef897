"""A coarser run's |error| on the stored grid (``inference.abs_error_on_stored_grid``)."""

from __future__ import annotations

import numpy as np

from ctae_core.inference import InputSpec, abs_error_hu, abs_error_on_stored_grid, prepare_input


def _scan(wire: bool) -> np.ndarray:
    hu = np.full((24, 40, 44), -1000, np.int16)
    hu[:, 6:34, 6:38] = 40  # soft tissue
    if wire:
        hu[2:22, 20, 21] = 2500  # one 3 mm voxel wide, through most of the scan
    return hu


def test_a_wire_keeps_its_hu_on_the_stored_grid_where_the_run_grid_averages_it_away():
    # 6 mm: the scan is (12, 20, 22), cropped to the pad size (8, 16, 16) around its centre
    spec = InputSpec(6.0, (8, 16, 16), -500.0, 500.0)
    with_wire = prepare_input(_scan(wire=True), 3.0, spec)
    normal = prepare_input(_scan(wire=False), 3.0, spec).x  # a model that reproduces the anatomy
    assert [(k.start, k.stop) for k in with_wire.kept] == [(2, 10), (2, 18), (3, 19)]

    error, body = abs_error_on_stored_grid(with_wire, normal, spec)

    assert error.shape == body.shape == (24, 40, 44)
    seen = (slice(4, 20), slice(4, 36), slice(6, 38))  # the kept part, on the stored grid
    np.testing.assert_allclose(error[seen][:, 16, 15], 2460.0, atol=1.0)  # the wire, z 4..19
    inside = np.zeros(error.shape, bool)
    inside[seen] = True
    assert error[~inside].max() == 0 and not body[~inside].any()  # cropped away: no error, no body
    assert body[seen].sum() == 16 * 28 * 32 and error[seen][body[seen]].mean() < 100
    # on the run's grid the same wire is an eighth of a voxel: far below bone
    assert abs_error_hu(with_wire, normal, spec).max() < 1000
