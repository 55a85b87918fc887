"""``orchestrator data check`` / ``data masks`` and the dataset pre-flight, run as a user would."""

from __future__ import annotations

import pytest

from tests.orchestrator.test_cli import run_cli
from tests.trainables import layouts


def test_data_check_prints_identities_images_and_cameras(tmp_path):
    root = layouts.make_market1501(tmp_path)
    result = run_cli("data", "check", "--dataset", "market1501", "--root", str(root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataset market1501 at ") and lines[0].endswith("Market-1501-v15.09.15")
    train = next(line for line in lines if line.startswith("train")).split()
    gallery = next(line for line in lines if line.startswith("gallery")).split()
    assert train[1:3] == ["3", "5"] and "(c1, c2, c3, c4, c6)" in " ".join(train)
    assert gallery[1:5] == ["2", "4", "2", "2"]  # identities, images, distractors, junk left out
    assert lines[-1] == "OK"


def test_data_check_msmt17_and_cuhk03np(tmp_path):
    result = run_cli("data", "check", "--dataset", "msmt17", "--root", str(layouts.make_msmt17(tmp_path / "m")), "--with-val")
    assert result.returncode == 0, result.stderr
    assert next(line for line in result.stdout.splitlines() if line.startswith("train")).split()[1:3] == ["3", "6"]
    root = layouts.make_cuhk03np(tmp_path / "c")
    result = run_cli("data", "check", "--dataset", "cuhk03np", "--root", str(root), "--subset", "labeled")
    assert result.returncode == 0, result.stderr
    assert "cuhk03-np/labeled" in result.stdout


def test_data_check_refuses_a_corrupted_dataset_in_one_line(tmp_path):
    root = layouts.make_market1501(tmp_path)
    layout = root / "Market-1501-v15.09.15"
    victims = [layout / "query" / "0001_c1s1_001051_00.jpg", layout / "bounding_box_train" / "0007_c3s3_015476_04.jpg"]
    for victim in victims:
        victim.write_bytes(victim.read_bytes()[:50])
    result = run_cli("data", "check", "--dataset", "market1501", "--root", str(root))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot decode 2 file(s)" in result.stderr and all(v.name in result.stderr for v in victims)


def test_data_check_refuses_bad_names_and_missing_folders(tmp_path):
    root = layouts.make_dukemtmc(tmp_path)
    layout = root / "DukeMTMC-reID"
    layouts.write_image(layout / "query" / "IMG_0001.jpg", 0)
    result = run_cli("data", "check", "--dataset", "dukemtmc", "--root", str(root))
    assert result.returncode == 2 and "bad image file names" in result.stderr and "1 file(s)" in result.stderr
    assert "IMG_0001.jpg" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    (layout / "query" / "IMG_0001.jpg").unlink()
    for f in (layout / "bounding_box_test").iterdir():
        f.unlink()
    (layout / "bounding_box_test").rmdir()
    result = run_cli("data", "check", "--dataset", "dukemtmc", "--root", str(root))
    assert result.returncode == 2 and "missing folder(s) bounding_box_test" in result.stderr


def test_data_masks_without_weights_is_exit_2(tmp_path):
    root = layouts.make_market1501(tmp_path, with_masks=False)
    result = run_cli("data", "masks", "--dataset", "market1501", "--root", str(root), "--weights", str(tmp_path / "none.pth"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: Mask R-CNN weights not found") and len(result.stderr.strip().splitlines()) == 1
    assert not (root / "Market-1501-v15.09.15" / "masks").exists()


def test_validate_wants_masks_for_the_implicit_attention(tmp_path):
    root = layouts.make_market1501(tmp_path / "data", with_masks=False)
    spec = tmp_path / "study.yaml"
    spec.write_text(
        "study:\n  name: ia\n"
        "baseline:\n"
        f"  dataset: {{name: market1501, root: '{root}', height: 32, width: 16}}\n"
        "  augment:\n"
        "    implicit_attention: {enabled: true, p: 0.5}\n"
        "ablation:\n  design: grid\n  axes: {augment.implicit_attention.p: [0.3, 0.5]}\n",
        encoding="utf-8",
    )
    result = run_cli("validate", str(spec))
    assert result.returncode == 2
    assert ":6: baseline.augment.implicit_attention.enabled: implicit attention needs person masks" in result.stderr
    assert "orchestrator data masks --dataset market1501" in result.stderr


@pytest.mark.slow
def test_data_masks_with_a_random_mask_rcnn(tmp_path):
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    weights = tmp_path / "maskrcnn.pth"
    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), weights)
    root = layouts.make_market1501(tmp_path / "data", with_masks=False)
    args = (
        "data",
        "masks",
        "--dataset",
        "market1501",
        "--root",
        str(root),
        "--weights",
        str(weights),
        "--min-size",
        "32",
        "--device",
        "cpu",
    )
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "5 computed, 0 reused" in result.stdout
    assert len(list((root / "Market-1501-v15.09.15" / "masks" / "bounding_box_train").iterdir())) == 5
    assert "0 computed, 5 reused" in run_cli(*args).stdout
