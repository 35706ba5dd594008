"""Reader (videos, frame folders; lazy), writers (TIFF, DAVIS PNGs), sample data."""

from __future__ import annotations


import numpy as np
import pytest

from napari_ipnet._reader import VideoFrames, frame_files, napari_get_reader
from napari_ipnet._writer import davis_palette, labels_target, write_labels, write_labels_davis, write_labels_tiff


def _moving_frames(n=6, h=64, w=80):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = 20 * t  # a different red level per frame
        frames[t, 16:40, 8 + 8 * t : 32 + 8 * t, 1] = 255
    return frames


@pytest.fixture
def video(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as iio2

    frames = _moving_frames()
    path = tmp_path / "clip.mp4"
    writer = iio2.get_writer(str(path), format="ffmpeg", fps=5, codec="libx264", quality=9, macro_block_size=16)
    for f in frames:
        writer.append_data(f)
    writer.close()
    return path, frames


def test_video_is_read_lazily_and_frame_accurately(video):
    path, frames = video
    reader = napari_get_reader(str(path))
    assert reader is not None
    (data, meta, kind), = reader(str(path))
    assert kind == "image" and meta["rgb"] and meta["name"] == "clip"
    assert data.shape == frames.shape and data.dtype == np.uint8
    assert type(data).__module__.startswith("dask")  # decoded on demand, not in memory
    for t in (5, 0, 3, 1):  # random access, backwards too
        x = np.asarray(data[t]).astype(int)
        errors = [np.abs(x - frames[u]).mean() for u in range(len(frames))]
        assert int(np.argmin(errors)) == t and errors[t] < 4


def test_video_frames_decode_only_what_is_asked(video):
    path, frames = video
    v = VideoFrames(path)
    assert v.n_frames == 6 and v.frame_shape == (64, 80, 3)
    v.frame(4)
    assert sorted(v._cache) == [0, 4]  # the first frame (probed at open) and the one asked for
    v.close()


def _write_video(path, frames, codec="libx264"):
    import imageio.v2 as iio2

    writer = iio2.get_writer(str(path), format="ffmpeg", fps=10, codec=codec, quality=8, macro_block_size=16)
    for f in frames:
        writer.append_data(f)
    writer.close()


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".mkv"])
def test_video_random_access_equals_sequential_reading(tmp_path, suffix):
    """Backward and forward jumps give the frame itself (an h264 AVI used to repeat frame 30)."""
    pytest.importorskip("imageio_ffmpeg")
    n = 40
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for t in range(n):
        frames[t] = 6 * t  # frame t has a mean of about 6 t
        frames[t, 12:28, t : t + 16] = 255 - 6 * t  # motion: the encoder uses P and B frames
    path = tmp_path / f"clip{suffix}"
    _write_video(path, frames)
    sequential = VideoFrames(path)
    assert sequential.n_frames == n
    expected = [sequential.frame(t).copy() for t in range(n)]
    sequential.close()
    for t in range(n):
        assert abs(expected[t].astype(float).mean() - frames[t].astype(float).mean()) < 3, t
    video = VideoFrames(path)
    order = [30, 10, *np.random.default_rng(0).permutation(n).tolist(), 39, 0, 39, 38]
    for t in order:
        np.testing.assert_array_equal(video.frame(t), expected[t], err_msg=f"frame {t}")
        video._cache.clear()  # every read decodes
    (data, _, _), = napari_get_reader(str(path))(str(path))
    for t in (30, 10, 25, 2):
        np.testing.assert_array_equal(np.asarray(data[t]), expected[t])
    with pytest.raises(IndexError, match="out of range"):
        video.frame(n)
    video.close()


def test_corrupt_video_is_named_without_blaming_the_install(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(bytes(range(256)) * 40)
    reader = napari_get_reader(str(bad))
    with pytest.raises(OSError, match="broken.mp4") as err:
        reader(str(bad))
    assert "pip install" not in str(err.value) and "ffmpeg could not decode it" in str(err.value)


def _write_jpegs(folder, frames, names):
    import imageio.v3 as iio

    folder.mkdir()
    for f, name in zip(frames, names):
        iio.imwrite(folder / name, f, quality=95)


def test_davis_jpeg_folder(tmp_path):
    frames = _moving_frames(n=12)
    names = [f"{t:05d}.jpg" if t % 2 else f"{t}.jpg" for t in range(12)]  # natural order, not text order
    _write_jpegs(tmp_path / "bear", frames, names)
    (tmp_path / "bear" / "notes.txt").write_text("ignored")
    assert [f.name for f in frame_files(tmp_path / "bear")][:3] == ["0.jpg", "00001.jpg", "2.jpg"]
    reader = napari_get_reader(str(tmp_path / "bear"))
    (data, meta, kind), = reader(str(tmp_path / "bear"))
    assert kind == "image" and meta["name"] == "bear" and data.shape == (12, 64, 80, 3)
    assert type(data).__module__.startswith("dask")
    x = np.asarray(data[10]).astype(int)
    assert np.abs(x - frames[10]).mean() < 2 and np.abs(x - frames[9]).mean() > 5


def test_folder_with_mixed_sizes_is_refused(tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "mixed"
    folder.mkdir()
    iio.imwrite(folder / "00000.png", np.zeros((20, 30, 3), np.uint8))
    iio.imwrite(folder / "00001.png", np.zeros((21, 30, 3), np.uint8))
    with pytest.raises(OSError, match="same size"):
        napari_get_reader(str(folder))(str(folder))


def test_folder_mixing_colour_gray_palette_and_rgba_reads_as_rgb(tmp_path):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:10, 5:10] = (200, 100, 50)
    gray = np.full((20, 30), 77, np.uint8)
    Image.fromarray(rgb).save(folder / "00000.png")
    Image.fromarray(gray).save(folder / "00001.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 128, np.uint8)])).save(folder / "00002.png")
    pal = Image.fromarray(np.full((20, 30), 2, np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 0, 0, 0, 10, 20, 30] + [0] * 759)
    pal.save(folder / "00003.png")
    Image.fromarray(gray).convert("LA").save(folder / "00004.png")
    (data, meta, kind), = napari_get_reader(str(folder))(str(folder))
    assert kind == "image" and meta["rgb"] and data.shape == (5, 20, 30, 3) and data.dtype == np.uint8
    x = np.asarray(data)
    assert x.shape == (5, 20, 30, 3)
    np.testing.assert_array_equal(x[0], rgb)
    np.testing.assert_array_equal(x[1], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(x[2], rgb)  # alpha dropped
    assert (x[3] == (10, 20, 30)).all()  # palette colours, not indices
    np.testing.assert_array_equal(x[4], x[1])


def test_folder_that_cannot_be_one_stack_names_the_file(tmp_path):
    from PIL import Image

    labels = tmp_path / "labels"
    write_labels_davis(str(labels), np.ones((2, 8, 8), np.uint8), {})
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(labels / "00002.png")
    with pytest.raises(OSError, match="00002.png is 8-bit colour.*not a palette PNG like 00000.png"):
        napari_get_reader(str(labels))(str(labels))
    deep = tmp_path / "deep"
    deep.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(deep / "0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(deep / "1.png")
    with pytest.raises(OSError, match="1.png is 8-bit grayscale.*0.png is uint16"):
        napari_get_reader(str(deep))(str(deep))


def test_truncated_jpeg_is_named(tmp_path):
    frames = _moving_frames(n=3)
    _write_jpegs(tmp_path / "seq", frames, [f"{t:05d}.jpg" for t in range(3)])
    bad = tmp_path / "seq" / "00002.jpg"
    jpeg = bad.read_bytes()
    bad.write_bytes(jpeg[: jpeg.index(b"\xff\xda") + 40])  # the header, then a few bytes of the scan
    (data, _, _), = napari_get_reader(str(tmp_path / "seq"))(str(tmp_path / "seq"))
    np.asarray(data[1])
    with pytest.raises(OSError, match="00002.jpg.*truncated"):
        np.asarray(data[2])
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match="cannot read .*00002.jpg"):
        napari_get_reader(str(tmp_path / "seq"))(str(tmp_path / "seq"))


@pytest.mark.parametrize("imagej", [True, False])
def test_folder_of_5d_tiffs_keeps_their_shape(tmp_path, imagej):
    import tifffile

    stacks = np.random.default_rng(0).integers(0, 255, (3, 2, 3, 4, 20, 30), dtype=np.uint8)
    for t, stack in enumerate(stacks):
        tifffile.imwrite(tmp_path / f"{t}.tif", stack, imagej=imagej, photometric="minisblack")
    (data, meta, kind), = napari_get_reader(str(tmp_path))(str(tmp_path))
    assert kind == "image" and data.shape == stacks.shape and not meta["rgb"]
    np.testing.assert_array_equal(np.asarray(data), stacks)
    tifffile.imwrite(tmp_path / "3.tif", stacks[0, 0], photometric="minisblack")
    with pytest.raises(OSError, match=r"3.tif is uint8 \(3, 4, 20, 30\) but 0.tif is uint8 \(2, 3, 4, 20, 30\)"):
        napari_get_reader(str(tmp_path))(str(tmp_path))


def test_reader_declines_what_it_does_not_read(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.txt").write_text("x")
    assert napari_get_reader(str(tmp_path / "empty")) is None
    assert napari_get_reader(str(tmp_path / "a.txt")) is None
    assert napari_get_reader(str(tmp_path / "missing.mp4")) is None
    assert napari_get_reader([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]) is None


def test_tiff_round_trip(tmp_path):
    import tifffile

    labels = np.random.default_rng(0).integers(0, 5, (4, 3, 20, 30)).astype(np.uint8)
    out = write_labels_tiff(str(tmp_path / "sub" / "labels.tif"), labels, {})
    np.testing.assert_array_equal(tifffile.imread(out[0]), labels)
    big = labels.astype(np.int32) * 1000
    out = write_labels_tiff(str(tmp_path / "big.tif"), big, {})
    back = tifffile.imread(out[0])
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, big)


def test_davis_png_round_trip_is_palette_indexed(tmp_path):
    from PIL import Image

    labels = np.zeros((5, 24, 32), np.uint8)
    for t in range(5):
        labels[t, 4:12, 2 + 3 * t : 10 + 3 * t] = 1
        labels[t, 14:20, 20:30] = 2
    (folder,) = write_labels_davis(str(tmp_path / "Annotations" / "seq"), labels, {})
    names = sorted(p.name for p in (tmp_path / "Annotations" / "seq").iterdir())
    assert names == [f"{t:05d}.png" for t in range(5)]
    with Image.open(tmp_path / "Annotations" / "seq" / "00002.png") as im:
        assert im.mode == "P"
        pal = np.asarray(im.getpalette()[:9]).reshape(3, 3)
    np.testing.assert_array_equal(pal, [[0, 0, 0], [128, 0, 0], [0, 128, 0]])  # the DAVIS colours
    np.testing.assert_array_equal(davis_palette()[:3], pal)
    (data, meta, kind), = napari_get_reader(folder)(folder)
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), labels)


def test_the_path_chooses_the_format(tmp_path):
    """A folder or .png: DAVIS PNGs; .tif / .tiff: TIFF; no suffix: TIFF with .tif added."""
    (tmp_path / "there").mkdir()
    cases = {
        "x": ("tiff", "x.tif"),
        "x.tif": ("tiff", "x.tif"),
        "x.TIFF": ("tiff", "x.TIFF"),
        "x.ome.tif": ("tiff", "x.ome.tif"),
        "run.v2": ("tiff", "run.v2.tif"),
        "x.png": ("davis", "x"),
        "x.PNG": ("davis", "x"),
        "out/": ("davis", "out"),
        "out/.tif": ("davis", "out"),  # napari added its suffix to "out/"
        "there": ("davis", "there"),  # an existing folder
    }
    for given, (kind, name) in cases.items():
        assert labels_target(str(tmp_path / given) if given != "out/" else str(tmp_path) + "/out/") == (
            kind, tmp_path / name
        ), given


def _read_back(path):
    (data, _, kind), = napari_get_reader(path)(path)
    assert kind == "labels", path
    return np.asarray(data)


def test_write_labels_picks_the_writer_from_the_path(tmp_path):
    labels = np.zeros((3, 16, 20), np.uint8)
    labels[1, 4:8, 4:9] = 2
    (tif,) = write_labels(str(tmp_path / "plain"), labels, {})
    assert tif == str(tmp_path / "plain.tif") and (tmp_path / "plain.tif").is_file()
    assert not (tmp_path / "plain").exists()
    np.testing.assert_array_equal(_read_back(tif), labels)
    (tiff,) = write_labels(str(tmp_path / "upper.TIFF"), labels, {})
    assert tiff == str(tmp_path / "upper.TIFF")
    np.testing.assert_array_equal(_read_back(tiff), labels)
    (folder,) = write_labels(str(tmp_path / "masks.png"), labels, {})
    assert folder == str(tmp_path / "masks")
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(_read_back(folder), labels)
    (tmp_path / "existing").mkdir()
    assert write_labels(str(tmp_path / "existing"), labels, {}) == [str(tmp_path / "existing")]
    np.testing.assert_array_equal(_read_back(str(tmp_path / "existing")), labels)


def test_layers_save_with_the_plugin_follows_the_path(tmp_path):
    """``viewer.layers.save(path, plugin="napari-ipnet")``, as napari routes it."""
    napari = pytest.importorskip("napari")
    import warnings

    import npe2
    from napari.plugins.io import save_layers

    npe2.PluginManager.instance().discover()
    labels = np.zeros((3, 16, 20), np.uint8)
    labels[2, 3:9, 5:11] = 1
    layer = napari.layers.Labels(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # napari warns when no writer fits or nothing was written
        assert save_layers(str(tmp_path / "plain"), [layer], plugin="napari-ipnet") == [str(tmp_path / "plain.tif")]
        assert save_layers(str(tmp_path / "b.tiff"), [layer], plugin="napari-ipnet") == [str(tmp_path / "b.tiff")]
        assert save_layers(str(tmp_path / "m.png"), [layer], plugin="napari-ipnet") == [str(tmp_path / "m")]
        assert save_layers(str(tmp_path) + "/dir/", [layer], plugin="napari-ipnet") == [str(tmp_path / "dir")]
    np.testing.assert_array_equal(_read_back(str(tmp_path / "plain.tif")), labels)
    np.testing.assert_array_equal(_read_back(str(tmp_path / "b.tiff")), labels)
    for folder in ("m", "dir"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["00000.png", "00001.png", "00002.png"]
        np.testing.assert_array_equal(_read_back(str(tmp_path / folder)), labels)
    assert not (tmp_path / "dir" / ".tif").exists()


def test_davis_writer_refuses_what_png_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="TIFF"):
        write_labels_davis(str(tmp_path / "a"), np.zeros((2, 3, 8, 8), np.uint8), {})
    with pytest.raises(ValueError, match="0..255"):
        write_labels_davis(str(tmp_path / "b"), np.full((2, 8, 8), 300, np.uint16), {})


def _read_davis(folder):
    (data, _, kind), = napari_get_reader(str(folder))(str(folder))
    assert kind == "labels"
    return np.asarray(data)


def test_davis_writer_replaces_an_earlier_folder_as_a_whole(tmp_path):
    folder = tmp_path / "Annotations" / "seq"
    long = np.zeros((20, 16, 16), np.uint8)
    long[:, 2:6, 2:6] = 2
    write_labels_davis(str(folder), long, {})
    (folder / ".DS_Store").write_bytes(b"x")  # system files go with the old folder
    short = np.zeros((10, 16, 16), np.uint8)
    short[:, 8:12, 8:12] = 1
    assert write_labels_davis(str(folder), short, {}) == [str(folder)]
    assert sorted(p.name for p in folder.iterdir()) == [f"{t:05d}.png" for t in range(10)]
    np.testing.assert_array_equal(_read_davis(folder), short)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["seq"]  # no temporary folder left


def test_davis_writer_failure_leaves_the_old_folder_intact(tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "seq"
    old = np.zeros((6, 16, 16), np.uint8)
    old[:, 1:5, 1:5] = 3
    write_labels_davis(str(folder), old, {})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_save = Image.Image.save
    saved = []

    def failing_save(self, fp, *args, **kwargs):
        saved.append(fp)
        if len(saved) == 4:
            raise OSError("disk full")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    new = np.ones((6, 16, 16), np.uint8)
    with pytest.raises(OSError, match="disk full"):
        write_labels_davis(str(folder), new, {})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # not half new, half old
    np.testing.assert_array_equal(_read_davis(folder), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]


def test_davis_writer_refuses_to_replace_a_folder_of_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="notes.txt"):
        write_labels_davis(str(folder), np.zeros((2, 8, 8), np.uint8), {})
    assert (folder / "notes.txt").read_text() == "keep me" and len(list(tmp_path.iterdir())) == 1


def test_writers_check_label_types_and_ranges(tmp_path):
    import tifffile

    huge = np.array([[[0, 2**32 + 5], [7, 2**40]]], np.int64)
    (out,) = write_labels_tiff(str(tmp_path / "huge.tif"), huge, {})
    np.testing.assert_array_equal(tifffile.imread(out), huge)  # no wrap-around
    assert tifffile.imread(out).dtype == np.uint64
    mid = np.array([[[0, 2**32 - 1], [70000, 1]]], np.int64)
    back = tifffile.imread(write_labels_tiff(str(tmp_path / "mid.tif"), mid, {})[0])
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, mid)
    for writer in (write_labels_tiff, write_labels_davis):
        name = writer.__name__
        with pytest.raises(ValueError, match="must be integers.*float64"):
            writer(str(tmp_path / f"{name}_float"), np.full((2, 8, 8), 1.7), {})
        with pytest.raises(ValueError, match="negative labels.*-3"):
            writer(str(tmp_path / f"{name}_neg"), np.full((2, 8, 8), -3, np.int16), {})
        with pytest.raises(ValueError, match="integers"):
            writer(str(tmp_path / f"{name}_complex"), np.ones((2, 8, 8), complex), {})
    with pytest.raises(ValueError, match="largest label is 256.*0..255"):
        write_labels_davis(str(tmp_path / "d256"), np.full((2, 8, 8), 256, np.int64), {})
    assert not any(p.name.startswith("write_labels_davis") for p in tmp_path.iterdir())
    mask = np.zeros((2, 8, 8), bool)
    mask[1, 2:4, 2:4] = True
    (folder,) = write_labels_davis(str(tmp_path / "bool"), mask, {})
    np.testing.assert_array_equal(_read_davis(folder), mask.astype(np.uint8))


def test_reader_and_writers_through_npe2(tmp_path, video):
    import npe2

    npe2.PluginManager.instance().discover()
    path, frames = video
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-ipnet")
    assert layers[0][0].shape == frames.shape
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[1, 4:8, 4:8] = 3
    written = npe2.write(str(tmp_path / "l.tif"), [(labels, {}, "labels")], plugin_name="napari-ipnet")
    assert written and written[0].endswith("l.tif")
    written = npe2.write(
        str(tmp_path / "davis"), [(labels, {}, "labels")], plugin_name="napari-ipnet.write_labels_davis"
    )
    assert sorted(p.name for p in (tmp_path / "davis").iterdir()) == ["00000.png", "00001.png", "00002.png"]


def test_samples_need_no_download(monkeypatch):
    import skimage.data._fetchers as fetchers

    def no_network(*args, **kwargs):
        raise AssertionError("a sample tried to fetch data")

    monkeypatch.setattr(fetchers, "_fetch", no_network)
    from napari_ipnet import _sample_data as sd

    (frames, meta, kind), = sd.colour_sequence()
    assert kind == "image" and meta["rgb"] and frames.shape == (20, 180, 240, 3) and frames.dtype == np.uint8
    (cells, meta, kind), = sd.cell_timelapse()
    assert cells.shape == (24, 128, 160) and cells.dtype == np.uint16


def test_colour_sequence_objects_move_and_occlude():
    from napari_ipnet._sample_data import make_colour_sequence

    frames, labels = make_colour_sequence(n_frames=10)
    assert set(np.unique(labels)) == {0, 1, 2}
    cx = [np.argwhere(labels[t] == 1)[:, 1].mean() for t in range(10)]
    assert all(b > a for a, b in zip(cx, cx[1:]))  # the horse walks right
    by = [np.argwhere(labels[t] == 2)[:, 0].mean() for t in range(10)]
    assert by[-1] > by[0] + 30  # the ball moves down
    assert (frames[0] != frames[-1]).any()


def test_cell_timelapse_cells_move_and_one_divides():
    from scipy import ndimage

    from napari_ipnet._sample_data import make_cell_timelapse

    frames, labels = make_cell_timelapse()
    n_parts = [ndimage.label(labels[t] == 1)[1] for t in range(len(labels))]
    assert n_parts[0] == 1 and n_parts[-1] == 2  # cell 1 divides
    assert len(np.unique(labels[0])) == 6  # background + 5 cells
    c0 = [np.argwhere(labels[t] == 2).mean(axis=0) for t in (0, len(labels) - 1)]
    assert np.hypot(*(c0[1] - c0[0])) > 1.0  # cells drift
    # microscopy-like: noisy background, bright cells
    assert frames[0][labels[0] > 0].mean() > 2 * frames[0][labels[0] == 0].mean()
    assert frames[0][labels[0] == 0].std() > 5


# ---------------------------------------------------------------- property-based round trips
_INT_DTYPES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]


def _label_arrays(draw, ndims, max_side=12):
    """A random label array: shape, dtype, a random set of ids (huge ones too), and for
    some signed arrays a negative id; floats with integral and fractional values."""
    from hypothesis import strategies as st

    dtype = np.dtype(draw(st.sampled_from([*_INT_DTYPES, "float32", "float64"])))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndims[0], max_size=ndims[1])))
    if dtype == bool:
        ids = [False, True]
    elif dtype.kind == "f":
        ids = draw(st.lists(st.sampled_from([0.0, 1.0, 1.7, 255.0, -2.0]), min_size=1, max_size=4))
    else:
        top = int(np.iinfo(dtype).max)
        special = [v for v in (1, 2, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**32 + 5, top) if v <= top]
        ids = draw(st.lists(st.one_of(st.sampled_from(special), st.integers(0, top)), min_size=1, max_size=5))
        ids = [0, *ids]
        if dtype.kind == "i" and draw(st.integers(0, 3)) == 0:
            ids.append(draw(st.integers(int(np.iinfo(dtype).min), -1)))
    picks = np.asarray(draw(st.lists(st.integers(0, len(ids) - 1), min_size=1, max_size=64)))
    flat = np.asarray(ids, dtype=dtype)[picks]
    return np.resize(flat, shape).astype(dtype)


def _property_settings():
    from hypothesis import HealthCheck, settings

    return settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_tiff_writer_round_trip_property():
    """Any integer labels >= 0 read back identical (no wrap-around); anything else is a clear ValueError."""
    pytest.importorskip("hypothesis")
    import tempfile

    import tifffile
    from hypothesis import example, given
    from hypothesis import strategies as st

    @_property_settings()
    @given(st.data())
    @example(None)  # the wrap-around of issue 15, every run
    def check(data):
        labels = _label_arrays(data.draw, (2, 4)) if data is not None else np.array([[0, 2**32 + 5]], np.int64)
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/labels.tif"
            if labels.dtype.kind == "f":
                with pytest.raises(ValueError, match="labels must be integers"):
                    write_labels_tiff(path, labels, {})
            elif labels.dtype.kind == "i" and labels.min() < 0:
                with pytest.raises(ValueError, match="negative labels"):
                    write_labels_tiff(path, labels, {})
            else:
                (out,) = write_labels_tiff(path, labels, {})
                back = tifffile.imread(out)
                assert back.shape == labels.shape
                assert back.dtype == bool or back.dtype.kind == "u"
                np.testing.assert_array_equal(back.astype(object), labels.astype(object))  # exact, even uint64

    check()


def test_davis_writer_round_trip_property():
    """Labels 0..255 of any integer dtype read back identical through the reader, even over an
    earlier folder; floats, negatives and labels above 255 are clear ValueErrors and write nothing."""
    pytest.importorskip("hypothesis")
    import tempfile
    from pathlib import Path

    from hypothesis import given
    from hypothesis import strategies as st

    @_property_settings()
    @given(st.data())
    def check(data):
        labels = _label_arrays(data.draw, (2, 3))
        if data.draw(st.booleans()) and labels.dtype.kind in "iu":  # ids that fit a palette PNG
            labels = np.clip(labels, 0, min(255, np.iinfo(labels.dtype).max)).astype(labels.dtype)
        earlier = data.draw(st.integers(0, 5))  # frames of a folder written before (0: none)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "seq"
            if earlier:
                write_labels_davis(str(folder), np.full((earlier, 4, 5), 9, np.uint8), {})
            before = sorted(p.name for p in folder.iterdir()) if earlier else None
            as_3d = labels[None] if labels.ndim == 2 else labels
            if labels.dtype.kind == "f":
                error = "labels must be integers"
            elif labels.dtype != bool and labels.min() < 0:
                error = "negative labels"
            elif labels.dtype != bool and labels.max() > 255:
                error = "0..255"
            else:
                error = None
            if error:
                with pytest.raises(ValueError, match=error):
                    write_labels_davis(str(folder), labels, {})
                assert (sorted(p.name for p in folder.iterdir()) if earlier else None) == before
                assert sorted(p.name for p in Path(tmp).iterdir()) == (["seq"] if earlier else [])
                return
            assert write_labels_davis(str(folder), labels, {}) == [str(folder)]
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["seq"]
            assert len(list(folder.iterdir())) == as_3d.shape[0]
            back = _read_davis(folder)
            assert back.shape == as_3d.shape
            np.testing.assert_array_equal(back, as_3d.astype(np.int64))

    check()


def test_frame_folder_round_trip_property():
    """Frames saved as PNG or TIFF files (any dtype TIFF holds, gray or colour) read back identical
    (RGBA as RGB), in natural order."""
    pytest.importorskip("hypothesis")
    import tempfile
    from pathlib import Path

    import tifffile
    from hypothesis import given
    from hypothesis import strategies as st
    from PIL import Image

    @_property_settings()
    @given(st.data())
    def check(data):
        fmt = data.draw(st.sampled_from(["png", "tif"]))
        dtypes = ["uint8", "uint16"] if fmt == "png" else ["uint8", "uint16", "int16", "float32", "bool"]
        dtype = np.dtype(data.draw(st.sampled_from(dtypes)))
        channels = data.draw(st.sampled_from([0, 3, 4] if dtype == np.uint8 else [0]))
        n, h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
        seed = data.draw(st.integers(0, 2**16))
        shape = (n, h, w, channels) if channels else (n, h, w)
        rng = np.random.default_rng(seed)
        if dtype.kind == "f":
            frames = rng.normal(size=shape).astype(dtype)
        elif dtype == bool:
            frames = rng.random(shape) > 0.5
        else:
            info = np.iinfo(dtype)
            frames = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
        with tempfile.TemporaryDirectory() as tmp:
            for t in range(n):
                f = Path(tmp) / f"{t}.{fmt}"  # 10.png after 9.png
                if fmt == "png":
                    Image.fromarray(frames[t]).save(f)
                else:
                    tifffile.imwrite(f, frames[t], photometric="rgb" if channels else "minisblack")
            (data_, meta, kind), = napari_get_reader(tmp)(tmp)
            expected = frames[..., :3] if channels == 4 else frames
            assert kind == "image" and data_.shape == expected.shape and data_.dtype == expected.dtype
            np.testing.assert_array_equal(np.asarray(data_), expected)

    check()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint16])
def test_tiff_written_by_the_plugin_reads_back_as_labels(tmp_path, dtype):
    labels = np.zeros((4, 24, 32), dtype)
    labels[1, 5:10, 6:12] = 3
    labels[3, 0:4, 0:4] = 1
    path = str(tmp_path / "masks.tif")
    write_labels_tiff(path, labels, {})
    reader = napari_get_reader(path)
    assert reader is not None
    (data, meta, kind), = reader(path)
    assert kind == "labels" and meta["name"] == "masks"
    assert meta["axis_labels"] == ("t", "y", "x")
    np.testing.assert_array_equal(np.asarray(data), labels)


def test_other_tiffs_still_read_as_images(tmp_path):
    import tifffile

    path = str(tmp_path / "stack.tif")
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), metadata={"axes": "TYX"})
    (_, _, kind), = napari_get_reader(path)(path)
    assert kind == "image"


def test_davis_folder_written_by_the_plugin_reads_back_as_labels(tmp_path):
    labels = np.zeros((3, 16, 20), np.uint8)
    labels[0, 2:6, 3:9] = 1
    labels[2, 8:12, 10:15] = 7
    folder = str(tmp_path / "ann")
    write_labels_davis(folder, labels, {})
    (data, meta, kind), = napari_get_reader(folder)(folder)
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), labels)
