"""Pure viewer helpers: windows, slice orientation, physical mapping, overlay, PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dashboard import slices
from dashboard.render import ViewSettings, render_views


def test_window_presets_map_level_to_mid_grey():
    for width, level in slices.WINDOW_PRESETS.values():
        grey = slices.window_to_uint8(np.array([level - width, level, level + width]), width, level)
        assert grey.tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="window width must be > 0"):
        slices.window_to_uint8(np.zeros(3), 0, 40)


def test_slices_have_the_right_shape_and_superior_up(phantom_hu):
    vol = phantom_hu.copy()
    vol[-1] = 3000  # the top (highest z) plane
    assert slices.extract_slice(vol, "axial", 4).shape == (32, 32)
    coronal = slices.extract_slice(vol, "coronal", 10)
    sagittal = slices.extract_slice(vol, "sagittal", 99)  # clipped to the last column
    assert coronal.shape == sagittal.shape == (16, 32)
    assert (coronal[0] == 3000).all() and (sagittal[0] == 3000).all()
    with pytest.raises(ValueError, match="plane 'oblique'"):
        slices.extract_slice(vol, "oblique", 0)


def test_physical_mapping_between_3_and_6_mm_grids():
    assert [slices.map_index(i, 3.0, 6.0, 4) for i in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert slices.map_index(20, 3.0, 6.0, 4) == 3  # clipped to the coarse grid
    coarse = np.arange(6).reshape(2, 3)
    fine = slices.resample_nearest(coarse, (4, 6), 6.0, 3.0)
    assert fine.tolist() == [[0, 0, 1, 1, 2, 2]] * 2 + [[3, 3, 4, 4, 5, 5]] * 2


def test_error_overlay_reddens_by_opacity_and_error():
    grey = np.full((2, 2), 100, np.uint8)
    error = np.array([[0, 150], [300, 600]], np.int16)
    rgb = slices.error_overlay(grey, error, opacity=0.5, error_max_hu=300)
    assert rgb[0, 0].tolist() == [100, 100, 100]
    assert rgb[0, 1].tolist() == [138, 75, 75]  # alpha 0.25
    assert rgb[1, 1].tolist() == rgb[1, 0].tolist() == [177, 50, 50]  # saturates at alpha 0.5
    with pytest.raises(ValueError, match="overlay shape"):
        slices.error_overlay(grey, error[:1], 0.5, 300)


def test_render_views_aligns_a_coarse_reconstruction(phantom_hu):
    recon = phantom_hu[::2, ::2, ::2].copy()
    error = np.abs(recon).astype(np.int16)
    images = render_views(
        phantom_hu,
        (8, 16, 16),
        ViewSettings(opacity=0.6),
        recon=recon,
        error=error,
        scan_spacing_mm=3.0,
        run_spacing_mm=6.0,
    )
    shapes = {p: Image.open(io.BytesIO(images[p].original)).size for p in slices.PLANES}
    assert shapes == {"axial": (32, 32), "coronal": (32, 16), "sagittal": (32, 16)}
    recon_img = Image.open(io.BytesIO(images["axial"].reconstruction))
    assert recon_img.size == (32, 32) and recon_img.mode == "L"
    assert Image.open(io.BytesIO(images["axial"].original)).mode == "RGB"
    plain = render_views(phantom_hu, (8, 16, 16), ViewSettings())
    assert plain["axial"].reconstruction is None and plain["axial"].error is None
    assert Image.open(io.BytesIO(plain["axial"].original)).mode == "L"


def test_histogram_fractions():
    assert slices.histogram_fractions([1, 3]).tolist() == [0.25, 0.75]
    assert slices.histogram_fractions([0, 0]).tolist() == [0.0, 0.0]
    assert len(slices.HU_HISTOGRAM_EDGES) == 65 and slices.HU_HISTOGRAM_EDGES[-1] == 3072


def test_hottest_region_is_outlined_on_every_plane_of_the_server_view():
    volume = np.full((12, 12, 12), 40, np.int16)
    region = np.zeros((6, 6, 6), bool)  # the run's grid is 6 mm, the scan's 3 mm
    region[1:4, 2:5, 2:5] = True
    images = render_views(volume, (4, 6, 6), ViewSettings(opacity=0.0), region=region,
                          scan_spacing_mm=3.0, run_spacing_mm=6.0)
    for plane, image in images.items():
        rgb = np.asarray(Image.open(io.BytesIO(image.original)).convert("RGB"))
        edge = (rgb == slices.REGION_RGB).all(axis=2)
        # 3 voxels of 6 mm are 6 scan pixels across: the 6×6 square's contour, hollow inside
        rows, cols = np.nonzero(edge)
        assert edge.sum() == 4 * 6 - 4, plane
        assert cols.max() - cols.min() == 5 and rows.max() - rows.min() == 5, plane
        assert not edge[rows.min() + 2, cols.min() + 2], plane
    assert slices.outline(np.ones((3, 3), bool)).sum() == 8  # the image edge closes the contour


def test_a_map_on_the_stored_grid_is_drawn_where_it_lies_beside_a_coarse_reconstruction():
    # a 6 mm run's map made on the stored 3 mm grid (stop 34): same shape as the scan, so drawn
    # voxel for voxel, while the reconstruction beside it is still upsampled from 6 mm
    volume = np.full((12, 12, 12), 40, np.int16)
    recon = np.full((6, 6, 6), 40, np.int16)
    error = np.zeros((12, 12, 12), np.int16)
    error[5, 3, 9] = 300  # one 3 mm voxel
    region = error > 0
    images = render_views(volume, (5, 3, 9), ViewSettings(opacity=0.0, error_max_hu=300.0),
                          recon=recon, error=error, region=region, scan_spacing_mm=3.0,
                          run_spacing_mm=6.0)
    heat = np.asarray(Image.open(io.BytesIO(images["axial"].error)).convert("L"))
    assert heat.shape == (12, 12)
    hot = np.argwhere(heat == heat.max())
    assert len(hot) == 1 and heat.max() > heat.min()  # one pixel, not a 2×2 block of a 6 mm voxel
    edge = (np.asarray(Image.open(io.BytesIO(images["axial"].original)).convert("RGB"))
            == slices.REGION_RGB).all(axis=2)
    assert edge.sum() == 1 and tuple(np.argwhere(edge)[0]) == tuple(hot[0])
    assert Image.open(io.BytesIO(images["axial"].reconstruction)).size == (12, 12)
