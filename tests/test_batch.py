"""``napari-ipnet batch``: many sessions on a Dask LocalCluster, failures, skip on re-run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("distributed")

from napari_ipnet import batch
from napari_ipnet.labels_zarr import read_labels_zarr
from napari_ipnet.session import Session
from napari_ipnet.session_file import image_source


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Three session files on TIFF stacks: two good (one saved mid-round), one whose
    image was deleted; and the labels each good one must give."""
    import tifffile
    import torch

    from napari_ipnet._sample_data import make_cell_timelapse
    from napari_ipnet.weights import load_model

    torch.set_num_threads(1)
    model = load_model("default", device="cpu")
    root = tmp_path_factory.mktemp("stacks")
    paths, expected = [], {}
    for i in range(3):
        frames, gt = make_cell_timelapse(n_frames=6, height=80, width=112, seed=i)
        tif = root / f"img{i}.tif"
        tifffile.imwrite(tif, frames)
        s = Session(frames, model)
        k = int(np.unique(gt[2])[1])
        s.interact(2, gt[2] == k, object_id=k)
        if i == 0:
            list(s.propagate())  # stack 1 is saved mid-round: the batch finishes it
        path = s.save(root / f"stack{i}.ipnet", source=image_source(tif))
        list(s.propagate()) if s.pending_frame is not None else None
        expected[path.name] = s.labels
        assert ((s.labels > 0).sum(axis=(1, 2)) > 0).sum() >= 3  # propagated: not vacuous
        paths.append(path)
    (root / "img2.tif").unlink()  # stack2: its image is gone
    return paths, expected


def test_batch_two_workers_one_bad_stack_then_skip(tmp_path, stacks):
    import tifffile

    paths, expected = stacks
    out = tmp_path / "out"
    lines: list[str] = []
    results = batch.run_batch(paths, out, workers=2, processes=False, log=lines.append)
    status = {r["session"].split("/")[-1]: r["status"] for r in results}
    assert status == {"stack0.ipnet": "done", "stack1.ipnet": "done", "stack2.ipnet": "failed"}
    assert "img2.tif does not exist" in results[2]["error"]
    assert any(line.startswith("FAILED") and "stack2.ipnet" in line for line in lines)
    assert any("dashboard" in line for line in lines)
    for p in paths[:2]:
        d = out / p.name.split(".")[0]
        np.testing.assert_array_equal(read_labels_zarr(d / "labels.zarr"), expected[p.name])
        np.testing.assert_array_equal(tifffile.imread(d / "labels.tif"), expected[p.name])
        report = json.loads((d / "report.json").read_text())
        assert report["labels_match"] and report["torch_threads"] == 1
        assert json.loads((d / "done.json").read_text())["sha256"] == batch.file_sha256(p)
    assert results[1]["finished_pending_round"] == 5 and results[0]["finished_pending_round"] == 0
    assert not (out / "stack2" / "done.json").exists()

    # a re-run skips the finished stacks, retries the failed one
    again = batch.run_batch(paths, out, workers=2, processes=False, log=lines.append)
    assert [r["status"] for r in again] == ["skipped", "skipped", "failed"]
    # a changed session file is processed again; a missing output too
    (out / "stack1" / "labels.tif").unlink()
    third = batch.run_batch(paths[:2], out, workers=1, processes=False, log=lines.append)
    assert [r["status"] for r in third] == ["skipped", "done"]


def test_batch_cli_exit_code_with_process_workers(tmp_path, stacks):
    from napari_ipnet import cli

    paths, expected = stacks
    out = tmp_path / "out"
    rc = cli.main(["batch", *map(str, paths), "--out", str(out), "--workers", "2", "--format", "zarr"])
    assert rc == 1  # one stack failed, the others were written
    np.testing.assert_array_equal(read_labels_zarr(out / "stack0" / "labels.zarr"), expected["stack0.ipnet"])
    assert not (out / "stack0" / "labels.tif").exists()
    assert cli.main(["batch", *map(str, paths[:2]), "--out", str(out), "--workers", "1", "--format", "zarr"]) == 0


def test_duplicate_names_refused(tmp_path):
    with pytest.raises(ValueError, match="collide"):
        batch.stack_names([tmp_path / "a" / "x.ipnet", tmp_path / "b" / "x.ipnet"])
