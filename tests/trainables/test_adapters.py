"""Dataset adapters on generated fixtures in each real layout, plus ``check_dataset``."""

from __future__ import annotations


import pytest

from search_spaces.trial_config import DATASETS, DatasetConfig
from tests.trainables import layouts
from trainables.data.adapters import adapter_names, get_adapter, read_dataset, register_adapter
from trainables.data.check import check_dataset, format_report
from trainables.data.datasets import dataset_key, load_reid_data
from trainables.data.errors import DatasetError


def test_config_names_match_the_registry():
    names = DATASETS.names()
    assert names == adapter_names()
    for name in names:
        assert get_adapter(name).description


def test_duplicate_and_unknown_names_are_errors():
    with pytest.raises(ValueError, match="already registered"):
        register_adapter("market1501", description="again")(lambda root: None)
    with pytest.raises(DatasetError, match="unknown dataset .*; known: cuhk03np, dukemtmc, folder, market1501, msmt17"):
        get_adapter("market")
    with pytest.raises(DatasetError, match="takes no option"):
        read_dataset("market1501", ".", subset="detected")


def test_market1501_protocol_masks_and_archive_folder(tmp_path):
    records = read_dataset("market1501", layouts.make_market1501(tmp_path))
    assert records.root == tmp_path / "Market-1501-v15.09.15"
    assert [(r.pid, r.camid) for r in records.train] == [(2, 1), (2, 2), (7, 3), (7, 6), (11, 4)]
    assert [r.pid for r in records.query] == [1, 3]
    assert sorted(r.pid for r in records.gallery) == [0, 0, 1, 3]  # distractors kept, junk out
    assert records.dropped["gallery"] == {"junk": 2, "distractors": 0}
    assert all(r.mask_path == records.root / "masks/bounding_box_train" / f"{r.path.stem}.png" for r in records.train)
    assert all(r.mask_path is None for r in records.query + records.gallery)


def test_market1501_rejects_a_seventh_camera_but_folder_reads_any(tmp_path):
    root = layouts.make_market1501(tmp_path / "m")
    layouts.write_image(root / "Market-1501-v15.09.15/query/0004_c7s1_000001_00.jpg", 1)
    with pytest.raises(DatasetError, match=r"1 file\(s\).*0004_c7s1_000001_00.jpg"):
        read_dataset("market1501", root)
    records = read_dataset("folder", layouts.make_folder(tmp_path / "f"))
    assert sorted({r.camid for r in records.train}) == [1, 9, 12]
    assert sorted(r.pid for r in records.gallery) == [0, 10]


def test_dukemtmc(tmp_path):
    records = read_dataset("dukemtmc", layouts.make_dukemtmc(tmp_path))
    assert records.root.name == "DukeMTMC-reID"
    assert [(r.pid, r.camid) for r in records.train] == [(1, 2), (1, 5), (5, 7), (5, 8)]
    assert len(records.query) == 2 and len(records.gallery) == 3


@pytest.mark.parametrize("version", ["MSMT17_V1", "MSMT17_V2"])
def test_msmt17_list_files(tmp_path, version):
    records = read_dataset("msmt17", layouts.make_msmt17(tmp_path, version))
    assert records.root.name == version
    # pids are shifted by one: list pid 0 is a real identity, not a distractor
    assert [(r.pid, r.camid) for r in records.train] == [(1, 1), (1, 5), (2, 7), (2, 15)]
    assert [(r.pid, r.camid) for r in records.query] == [(1, 2), (4, 9)]
    assert [r.pid for r in records.gallery] == [1, 4, 5]
    train_dir = "train" if version == "MSMT17_V1" else "mask_train_v2"
    assert records.train[0].path == records.root / train_dir / "0000/0000_000_01_0303morning_0015_0.jpg"
    with_val = read_dataset("msmt17", tmp_path, with_val=True)
    assert len(with_val.train) == 6 and {3} <= {r.pid for r in with_val.train}


def test_msmt17_bad_lines_and_missing_files_are_reported_together(tmp_path):
    root = layouts.make_msmt17(tmp_path)
    layout = root / "MSMT17_V1"
    with open(layout / "list_query.txt", "a") as handle:
        handle.write("0005/0005_000_xx_bad.jpg 5\nonly-one-field\n0006/0006_000_02_0304_0001_0.jpg 6\n")
    with pytest.raises(DatasetError) as info:
        read_dataset("msmt17", root)
    message = str(info.value)
    assert "bad list line(s), 2 file(s): list_query.txt:3" in message
    assert "listed image(s) missing, 1 file(s)" in message and "0006_000_02" in message
    (layout / "list_gallery.txt").unlink()
    with pytest.raises(DatasetError, match="list_gallery.txt"):
        read_dataset("msmt17", root)


def test_cuhk03np_subsets(tmp_path):
    root = layouts.make_cuhk03np(tmp_path)
    detected = read_dataset("cuhk03np", root, subset="detected")
    labeled = read_dataset("cuhk03np", root, subset="labeled")
    assert detected.root == tmp_path / "cuhk03-np" / "detected"
    assert (len(detected.train), len(labeled.train)) == (4, 5)
    assert [(r.pid, r.camid) for r in detected.query] == [(1368, 1), (1370, 2)]
    assert read_dataset("cuhk03np", root / "cuhk03-np").root == detected.root  # default subset
    with pytest.raises(DatasetError, match="subset must be one of"):
        read_dataset("cuhk03np", root, subset="both")


def test_bad_names_in_every_split_are_counted_together(tmp_path):
    root = layouts.make_market1501(tmp_path)
    layout = root / "Market-1501-v15.09.15"
    for i in range(4):
        layouts.write_image(layout / "query" / f"bad{i}.jpg", i)
    for i in range(3):
        layouts.write_image(layout / "bounding_box_train" / f"x{i}_c1.jpg", i)
    with pytest.raises(DatasetError) as info:
        read_dataset("market1501", root)
    message = str(info.value)
    assert "7 file(s)" in message and "(and 2 more)" in message and "0002_c1s1_000451_03.jpg" in message


def test_missing_folder_and_empty_split(tmp_path):
    root = layouts.make_dukemtmc(tmp_path)
    layout = root / "DukeMTMC-reID"
    for f in (layout / "query").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="no usable images in split"):
        read_dataset("dukemtmc", root)
    (layout / "query").rmdir()
    with pytest.raises(DatasetError, match="missing folder.*query"):
        read_dataset("dukemtmc", root)
    with pytest.raises(DatasetError, match="no Market-1501 layout"):
        read_dataset("market1501", tmp_path / "DukeMTMC-reID" / "bounding_box_train")


def test_check_dataset_counts_and_format(tmp_path):
    report = check_dataset("market1501", layouts.make_market1501(tmp_path))
    rows = {row.split: row for row in report.splits}
    assert (rows["train"].identities, rows["train"].images, rows["train"].cameras) == (3, 5, (1, 2, 3, 4, 6))
    assert (rows["gallery"].identities, rows["gallery"].images, rows["gallery"].distractors) == (2, 4, 2)
    assert rows["gallery"].dropped_junk == 2 and rows["train"].masks == 5
    text = "\n".join(format_report(report))
    assert "train" in text and "5 (c1, c2, c3, c4, c6)" in text


def test_check_dataset_names_undecodable_files(tmp_path):
    root = layouts.make_market1501(tmp_path)
    layout = root / "Market-1501-v15.09.15"
    victim = layout / "bounding_box_test" / "0001_c2s1_000301_01.jpg"
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    (layout / "query" / "0003_c5s1_001501_00.jpg").write_bytes(b"\x00garbage" * 10)
    (layout / "masks" / "bounding_box_train" / "0002_c1s1_000451_03.png").write_bytes(b"")
    with pytest.raises(DatasetError) as info:
        check_dataset("market1501", root)
    message = str(info.value)
    assert "3 file(s)" in message and "0001_c2s1_000301_01.jpg" in message and "0002_c1s1_000451_03.png" in message
    check_dataset("market1501", root, decode=False)  # names alone are fine


def test_load_reid_data_through_adapters(tmp_path):
    layouts.make_msmt17(tmp_path)
    config = DatasetConfig(name="msmt17", root=str(tmp_path), height=16, width=8, msmt17_with_val=True)
    data = load_reid_data(config)
    assert data.train.images.shape == (6, 16, 8, 3) and data.composite is None
    assert data.query.camids.tolist() == [2, 9]
    assert "with_val=True" in dataset_key(config)
    layouts.make_cuhk03np(tmp_path / "c")
    labeled = DatasetConfig(name="cuhk03np", root=str(tmp_path / "c"), height=16, width=8, cuhk03_subset="labeled")
    assert len(load_reid_data(labeled).train) == 5
    assert dataset_key(labeled) != dataset_key(labeled.model_copy(update={"cuhk03_subset": "detected"}))


def test_dataset_specific_fields_reset_on_other_datasets():
    a = DatasetConfig(name="market1501", root="/x", cuhk03_subset="labeled", msmt17_with_val=True)
    assert a == DatasetConfig(name="market1501", root="/x")
    assert DatasetConfig(name="cuhk03np", root="/x", cuhk03_subset="labeled").cuhk03_subset == "labeled"


def test_all_fixture_images_decode(tmp_path):
    # The fixtures themselves are valid: every layout passes the full check.
    for make, name, options in [
        (layouts.make_dukemtmc, "dukemtmc", {}),
        (layouts.make_msmt17, "msmt17", {}),
        (layouts.make_cuhk03np, "cuhk03np", {"subset": "labeled"}),
        (layouts.make_folder, "folder", {}),
    ]:
        report = check_dataset(name, make(tmp_path / name), **options)
        assert all(row.images > 0 for row in report.splits), name
