"""nucleitut.outputs: the command line's files per image (labels, overlay, table)."""

import csv

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nucleitut import outputs
from nucleitut.pipeline import Segmentation


def two_nuclei():
    labels = np.zeros((40, 50), np.int32)
    labels[2:12, 3:13], labels[20:35, 30:45] = 1, 2
    image = np.dstack([(labels > 0).astype(np.uint8) * 200] * 3)
    return Segmentation(labels, "x.png", 12.0, "estimated", 1.0, "as is (8-bit)", 0.1, image=image)


def test_outputs_are_16bit_png_tiff_overlay_and_a_table(tmp_path):
    result = two_nuclei()
    labels = result.labels
    intensity = (labels * 1000).astype(np.uint16)
    paths = outputs.write_outputs(result, tmp_path, "x", intensity=intensity)
    assert paths == outputs.output_paths(tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_labels.png", "x_labels.tif", "x_nuclei.csv", "x_overlay.png"]
    png = iio.imread(paths["labels_png"])
    assert png.dtype == np.uint16 and np.array_equal(png, labels)
    assert np.array_equal(tifffile.imread(paths["labels_tif"]), labels)
    overlay = iio.imread(paths["overlay"])
    assert overlay.shape == (40, 50, 3) and overlay.dtype == np.uint8
    with open(paths["table"]) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["label", "area", "centroid_y", "centroid_x", "equivalent_diameter", "mean_intensity"]
    assert [int(r["area"]) for r in rows] == [100, 225]
    assert [float(r["mean_intensity"]) for r in rows] == [1000.0, 2000.0]
    assert float(rows[1]["centroid_y"]) == pytest.approx(27) and float(rows[0]["equivalent_diameter"]) == pytest.approx(11.284, abs=1e-3)
    with pytest.raises(FileExistsError, match="x_labels.png: exists; use --overwrite"):
        outputs.write_outputs(result, tmp_path, "x")
    outputs.write_outputs(result, tmp_path, "x", overwrite=True)


def test_the_table_measures_the_image_the_networks_saw_unless_told_otherwise(tmp_path):
    result = two_nuclei()
    paths = outputs.write_outputs(result, tmp_path, "seen")
    with open(paths["table"]) as handle:
        assert [float(r["mean_intensity"]) for r in csv.DictReader(handle)] == [200.0, 200.0]
    table = outputs.nucleus_table(result.labels)
    assert "mean_intensity" not in table and table["label"].tolist() == [1, 2]
    # without an image the overlay shows the labels on black
    blind = Segmentation(result.labels, "y", None, "not estimated", 1.0, "as is (8-bit)", 0.1)
    overlay = iio.imread(outputs.write_outputs(blind, tmp_path, "blind")["overlay"])
    assert overlay.shape == (40, 50, 3) and overlay[result.labels == 0].max() == 0 and overlay[result.labels > 0].max() > 0


def test_more_nuclei_than_a_16bit_png_holds_is_refused_before_anything_is_written(tmp_path):
    labels = np.zeros((4, 4), np.int32)
    labels[0, 0] = 70_000
    result = Segmentation(labels, "crowded", None, "not estimated", 1.0, "as is (8-bit)", 0.1)
    with pytest.raises(ValueError, match="crowded: 70000 nuclei do not fit a 16-bit label image"):
        outputs.write_outputs(result, tmp_path / "out", "crowded")
    assert not (tmp_path / "out").exists()
