"""lab5.images: one safe decode per image (every failure a DataError naming guid and path), the folder check, sizes."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image
from synthetic import jpeg_bytes

from lab5.data import load_dataset
from lab5.errors import DataError
from lab5.images import check_images, image_sizes, load_image


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- one image
def test_truncated_jpeg_raises_data_error_naming_guid_and_path(tmp_path):
    p = _write(tmp_path / "5.jpg", jpeg_bytes(noise=1)[:300])
    for min_side in (None, 8):
        with pytest.raises(DataError) as e:
            load_image(p, "5", min_side)
        assert "guid 5" in str(e.value) and str(p) in str(e.value)


def test_non_image_jpg_raises_data_error_naming_guid_and_path(tmp_path):
    p = _write(tmp_path / "6.jpg", b"<html>not an image</html>")
    with pytest.raises(DataError) as e:
        load_image(p, "6")
    assert "guid 6" in str(e.value) and str(p) in str(e.value) and "corrupt" in str(e.value)


def test_missing_image_raises_data_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_image(tmp_path / "9.jpg", "9")
    assert e.value.problems == [f"guid 9: image file missing: {tmp_path / '9.jpg'}"]


def test_png_bytes_named_jpg_load_as_rgb(tmp_path):
    buf = io.BytesIO()
    Image.new("RGBA", (20, 10), (255, 0, 0, 128)).save(buf, "PNG")
    p = _write(tmp_path / "1.jpg", buf.getvalue())
    for min_side in (None, 4):
        img = load_image(p, "1", min_side)
        assert img.mode == "RGB" and img.size == (20, 10)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_load_as_rgb(tmp_path, mode):
    p = _write(tmp_path / "1.jpg", jpeg_bytes((200, 100, 50), size=(40, 40), mode=mode))
    assert Image.open(p).mode == mode
    img = load_image(p, "1")
    assert img.mode == "RGB" and img.size == (40, 40)


def test_min_side_decodes_a_reduced_jpeg_no_smaller_than_asked(tmp_path):
    p = _write(tmp_path / "1.jpg", jpeg_bytes(size=(256, 128), noise=0))
    assert load_image(p, "1").size == (256, 128)
    img = load_image(p, "1", min_side=32)
    assert img.mode == "RGB"
    assert img.size == (64, 32)  # the 1/4 reduction: the largest whose short side stays >= 32


def test_image_above_decompression_bomb_limit_raises_data_error(tmp_path, monkeypatch, dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # the 32x32 images are 1024 pixels: over the limit
    p = root / "data" / "1.jpg"
    with pytest.raises(DataError) as e:
        load_image(p, "1")
    assert "guid 1" in str(e.value) and "too large" in str(e.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # more than twice over: PIL's hard error
    with pytest.raises(DataError, match="too large"):
        load_image(p, "1")
    with pytest.raises(DataError) as e:
        check_images(load_dataset(root).image_paths())
    assert len(e.value.problems) == 4 and all("too large" in line for line in e.value.problems)


def test_unreadable_image_raises_data_error(tmp_path):
    p = _write(tmp_path / "1.jpg", jpeg_bytes())
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running with privileges that read a mode-000 file")
        with pytest.raises(DataError, match="guid 1: image .* cannot be read"):
            load_image(p, "1")
    finally:
        os.chmod(p, 0o644)


# --------------------------------------------------------------------------- a folder of images
@pytest.mark.parametrize("defect", ["truncated", "not-an-image"])
def test_check_images_reports_bad_images_with_guid_and_path(dataset_factory, defect):
    root = dataset_factory(n_train=6, n_test=2)
    p = root / "data" / "3.jpg"
    p.write_bytes(jpeg_bytes(noise=3)[:250] if defect == "truncated" else b"GIF89a? no, just text")
    ds = load_dataset(root)  # presence only: decoding is check_images' job
    with pytest.raises(DataError) as e:
        check_images(ds.image_paths())
    assert len(e.value.problems) == 1
    assert "guid 3" in e.value.problems[0] and str(p) in e.value.problems[0]


def test_check_images_reports_sizes_and_modes(dataset_factory):
    root = dataset_factory(n_train=3, n_test=1)
    (root / "data" / "2.jpg").write_bytes(jpeg_bytes(size=(64, 48), mode="L"))
    rep = check_images(load_dataset(root).image_paths())
    assert rep.count == 4
    assert rep.min_size == (32, 32) and rep.max_size == (64, 48)
    assert rep.modes == {"RGB": 3, "L": 1}


def test_check_images_lists_every_bad_image_of_the_paths_it_is_given(tmp_path):
    paths = {"1": _write(tmp_path / "1.jpg", jpeg_bytes()), "2": tmp_path / "2.jpg",
             "3": _write(tmp_path / "3.jpg", b"nope")}
    with pytest.raises(DataError) as e:
        check_images(paths)
    assert [line.split(":")[0] for line in e.value.problems] == ["guid 2", "guid 3"]
    assert check_images({"1": paths["1"]}).count == 1
    empty = check_images({})
    assert (empty.count, empty.min_size, empty.max_size) == (0, (0, 0), (0, 0))


def test_image_sizes_reads_width_and_height_of_each_path(tmp_path):
    paths = {"a": _write(tmp_path / "a.jpg", jpeg_bytes(size=(40, 20))),
             "b": _write(tmp_path / "b.jpg", jpeg_bytes(size=(16, 64)))}
    sizes = image_sizes(paths)
    assert sizes.to_dict("records") == [{"guid": "a", "width": 40, "height": 20}, {"guid": "b", "width": 16, "height": 64}]
