"""LiverDataModule: both layouts, patient split, augmentation alignment, errors, cache."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import cv2
import litlab.datamodules.liver_decode as liver_decode
import litlab.datamodules.synthetic.liver as synthetic_liver
import nibabel as nib
import numpy as np
import pytest
import torch
from litlab.datamodules.liver import LiverDataModule, LiverSliceDataset, liver_train_transform
from litlab.datamodules.synthetic.liver import write_liver_phantoms
from torchvision import tv_tensors

SIZE = 32


def _dm(root: Path | None, **kwargs) -> LiverDataModule:
    options = {"image_size": SIZE, "num_workers": 0, "empty_slice_fraction": 1.0}
    options.update(kwargs)
    return LiverDataModule(root=None if root is None else str(root), **options)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 patients x 4 slices: 4 NIfTI volumes, 4 PNG slice patients."""
    root = tmp_path_factory.mktemp("phantoms")
    return write_liver_phantoms(root, n_patients=8, n_slices=4, size=SIZE, nifti_patients=4)


def _write_png_patient(
    folder: Path, names: list[str], size: int = 24, empty: tuple[int, ...] = ()
) -> None:
    """Slices with a bright square of liver (none in the ``empty`` slice indices)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        mask = np.zeros((size, size), np.uint8)
        if i not in empty:
            mask[4 : size // 2, 3 : size // 2 + 2] = 255
        image = np.where(mask > 0, 200, 40).astype(np.uint8)
        cv2.imwrite(str(folder / "images" / name), image)
        cv2.imwrite(str(folder / "masks" / name), mask)


def _per_patient_root(root: Path, n_patients: int = 6, n_slices: int = 3) -> Path:
    for p in range(n_patients):
        _write_png_patient(root / f"case{p}", [f"{k:03d}.png" for k in range(n_slices)])
    return root


def _write_volume(folder: Path, key: str, volume: np.ndarray, seg: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"volume-{key}.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"segmentation-{key}.nii.gz")


# ----------------------------------------------------------------------------- loading


def test_both_layouts_load(phantoms: Path) -> None:
    dm = _dm(phantoms, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    patients = set(dm.slices.patients.tolist())
    assert patients == {f"volume-{i}" for i in range(4)} | {f"phantom-{i:02d}" for i in range(4, 8)}
    assert len(dm.slices.images) == 8 * 4
    image, mask, meta = next(iter(dm.train_dataloader()))
    assert image.shape == (4, 1, SIZE, SIZE) and image.dtype == torch.float32
    assert mask.shape == (4, SIZE, SIZE) and mask.dtype == torch.int64
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(mask.unique().tolist()) <= {0, 1}
    assert dm.num_classes == 2 and dm.class_names == ["background", "liver"]


@pytest.mark.parametrize(("layout", "prefix"), [("nifti", "volume-"), ("slices", "phantom-")])
def test_layout_picks_one(phantoms: Path, layout: str, prefix: str) -> None:
    dm = _dm(phantoms, layout=layout, split_fractions=(0.5, 0.25, 0.25))
    dm.setup()
    assert all(p.startswith(prefix) for p in dm.slices.patients)
    assert len(set(dm.slices.patients.tolist())) == 4


def test_setup_twice_keeps_the_split(phantoms: Path) -> None:
    dm = _dm(phantoms)
    dm.setup("fit")
    train = dm.train_set
    dm.setup("test")
    assert dm.train_set is train


# ----------------------------------------------------------------------------- split


def test_split_by_patient(tmp_path: Path) -> None:
    root = write_liver_phantoms(tmp_path, n_patients=10, n_slices=3, size=SIZE, nifti_patients=3)
    dm = _dm(root)
    dm.setup()
    split = dm.split_patients
    assert [len(split[s]) for s in ("train", "val", "test")] == [7, 2, 1]
    everyone = split["train"] + split["val"] + split["test"]
    assert sorted(everyone) == sorted(set(dm.slices.patients.tolist()))
    assert len(set(everyone)) == 10  # nobody in two splits
    for name, dataset in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        assert set(dm.slices.patients[dataset.indices]) == set(split[name])
        assert len(dataset) == 3 * len(split[name])  # every slice of a patient stays with it
    again = _dm(root)
    again.setup()
    assert again.split_patients == split
    other = _dm(root, seed=7)
    other.setup()
    assert other.split_patients != split


def test_too_few_patients(tmp_path: Path) -> None:
    root = write_liver_phantoms(tmp_path, n_patients=4, n_slices=2, size=SIZE)
    with pytest.raises(ValueError, match=r"too few patients: 4 patient\(s\).*val split is empty"):
        _dm(root).setup()
    dm = _dm(root, split_fractions=(0.75, 0.25, 0.0))  # an explicit 0 may stay empty
    dm.setup()
    assert len(dm.test_set) == 0 and len(dm.split_patients["val"]) == 1


def test_per_patient_folders_name_the_patients(tmp_path: Path) -> None:
    dm = _dm(_per_patient_root(tmp_path / "data"))
    dm.setup()
    assert set(dm.slices.patients.tolist()) == {f"case{p}" for p in range(6)}


def test_flat_folder_patients_from_file_names(tmp_path: Path) -> None:
    names = [f"pat{p}_slice{k}.png" for p in range(6) for k in range(2)]
    names += ["volume-7_12.png", "volume-7_13.png"]
    _write_png_patient(tmp_path / "flat", names)
    dm = _dm(tmp_path / "flat")
    dm.setup()
    assert set(dm.slices.patients.tolist()) == {f"pat{p}" for p in range(6)} | {"volume-7"}
    custom = _dm(tmp_path / "flat", patient_regex=r"(?P<patient>.+?)[_-].*")
    custom.setup()
    assert set(custom.slices.patients.tolist()) == {f"pat{p}" for p in range(6)} | {"volume"}


def test_flat_folder_without_patient_in_names(tmp_path: Path) -> None:
    _write_png_patient(tmp_path, [f"{k:04d}.png" for k in range(8)])
    with pytest.raises(ValueError, match=r"cannot tell the patient of .*0000\.png.*patient_regex"):
        _dm(tmp_path).setup()


# ----------------------------------------------------------------------------- classes


def test_tumour_merged_or_kept(tmp_path: Path) -> None:
    root = write_liver_phantoms(
        tmp_path, n_patients=6, n_slices=6, size=SIZE, nifti_patients=6, tumour_probability=1.0
    )
    two, three = _dm(root, augment=False), _dm(root, num_classes=3, augment=False)
    two.setup()
    three.setup()
    assert three.class_names == ["background", "liver", "tumour"]
    masks2 = torch.stack([two.train_set[i][1] for i in range(len(two.train_set))])
    masks3 = torch.stack([three.train_set[i][1] for i in range(len(three.train_set))])
    assert masks2.max() == 1
    assert (masks3 == 2).sum() > 0
    torch.testing.assert_close(masks2, (masks3 > 0).long())


# ----------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_masks_aligned() -> None:
    """The image *is* the mask (0/1): after the joint transform they still coincide."""
    mask = np.zeros((1, 48, 48), np.uint8)
    mask[0, 8:30, 5:20] = 1  # off-centre, so mirroring and shifts move it
    mask[0, 34:40, 30:44] = 2
    images = (mask > 0).astype(np.uint8) * 255
    dataset = LiverSliceDataset(
        images, mask, np.array([0]), 3, liver_train_transform(30.0, 0.2, 0.5)
    )
    torch.manual_seed(0)
    moved = mirrored = 0
    for _ in range(25):
        image, target, _ = dataset[0]
        image = image[0]
        exact = (image == 0) | (image == 1)  # pixels not blended by bilinear sampling
        assert exact.float().mean() > 0.9
        assert torch.equal((target[exact] > 0).float(), image[exact])
        assert ((image > 0.5) == (target > 0)).float().mean() > 0.98
        assert set(target.unique().tolist()) <= {0, 1, 2}  # nearest: no blended labels
        moved += int(not torch.equal(target, torch.from_numpy(mask[0]).long()))
        mirrored += int(torch.nonzero(target == 1)[:, 1].float().mean() > 24)
    assert moved >= 20 and 3 <= mirrored <= 22


def test_only_training_split_is_augmented(phantoms: Path) -> None:
    dm = _dm(phantoms)
    dm.setup()
    torch.manual_seed(0)
    for dataset, augmented in ((dm.train_set, True), (dm.val_set, False), (dm.test_set, False)):
        draws = [dataset[0] for _ in range(6)]
        same = all(torch.equal(draws[0][0], d[0]) for d in draws)
        assert same != augmented
    unaugmented = _dm(phantoms, augment=False)
    unaugmented.setup()
    assert torch.equal(unaugmented.train_set[0][0], unaugmented.train_set[0][0])


def test_transform_accepts_tv_tensors() -> None:
    image = tv_tensors.Image(torch.rand(1, 16, 16))
    mask = tv_tensors.Mask(torch.randint(0, 2, (16, 16)))
    out_image, out_mask = liver_train_transform()(image, mask)
    assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
    assert out_image.shape == (1, 16, 16) and out_mask.shape == (16, 16)


# ----------------------------------------------------------------------------- empty slices


def test_empty_slice_fraction_thins_training_only(tmp_path: Path) -> None:
    for p in range(12):
        _write_png_patient(tmp_path / f"p{p}", [f"{k}.png" for k in range(10)], empty=(0, 1, 2, 3))

    def sizes(fraction: float) -> tuple[int, int, int, int]:
        dm = _dm(tmp_path, empty_slice_fraction=fraction, split_fractions=(0.5, 0.25, 0.25))
        dm.setup()
        assert len(dm.slices.images) == 12 * 10  # decoded whole, whatever the fraction
        return len(dm.train_set), len(dm.val_set), len(dm.test_set), len(dm.slices.images)

    assert sizes(0.0) == (6 * 6, 3 * 10, 3 * 10, 120)  # validation and test keep whole scans
    assert sizes(1.0) == (6 * 10, 30, 30, 120)
    half = sizes(0.5)[0]
    assert 6 * 6 < half < 6 * 10
    assert sizes(0.5)[0] == half  # seeded


def test_batches_say_which_volume_and_slice(phantoms: Path) -> None:
    dm = _dm(phantoms, batch_size=64)
    dm.setup()
    assert dm.volume_names == sorted(set(dm.slices.patients.tolist()))
    _, mask, meta = next(iter(dm.test_dataloader()))
    assert len(meta["volume"]) == len(mask) == len(dm.test_set)
    for volume, index, patient in zip(meta["volume"], meta["slice"], meta["patient"], strict=True):
        assert dm.volume_names[int(volume)] == patient == dm.slices.patients[int(index)]
    assert set(meta["patient"]) == set(dm.split_patients["test"])
    info = dm.volume_info()
    assert {name for name, v in info.items() if v["split"] == "test"} == set(meta["patient"])
    assert sum(v["slices"] for v in info.values()) == len(dm.slices.images)


# ----------------------------------------------------------------------------- spacing


def test_spacing_refuses_png_slices(tmp_path: Path) -> None:
    _per_patient_root(tmp_path)
    with pytest.raises(ValueError, match=r"data\.spacing=1\.5 .*PNG slice, which records no"):
        _dm(tmp_path, spacing=1.5).setup()
    with pytest.raises(ValueError, match="spacing must be a positive number"):
        _dm(tmp_path, spacing=0.0)
    dm = _dm(tmp_path)
    dm.setup()
    assert all(np.isnan(v["spacing"]).all() for v in dm.volume_info().values())


# ----------------------------------------------------------------------------- cache


def test_cache_is_reused_and_invalidated(phantoms: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dm(phantoms, image_size=24).setup()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(liver_decode, "decode_sources", no_decoding)
    dm = _dm(phantoms, image_size=24)
    dm.setup()
    assert len(dm.slices.images) == 32 and dm.slices.images.shape[1:] == (24, 24)
    with pytest.raises(AssertionError, match="decoded again"):
        _dm(phantoms, image_size=20).setup()  # another option -> another cache
    mask = next((phantoms / "slices" / "masks").glob("*.png"))
    stat = mask.stat()
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        with pytest.raises(AssertionError, match="decoded again"):
            _dm(phantoms, image_size=24).setup()  # a changed file -> decode again
    finally:
        os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_default_root_generates_once(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"synthetic_patients": 6, "synthetic_slices": 3, "synthetic_size": SIZE}
    dm = _dm(None, **kwargs)
    dm.prepare_data()
    dm.setup()
    root = dm.data_path()
    assert root.is_relative_to(Path(os.environ["LITLAB_CACHE"]) / "data")
    assert len(list((root / "nifti").glob("volume-*"))) == 3
    assert len(list((root / "slices" / "images").glob("*.png"))) == 3 * 3

    def no_drawing(*args, **kwargs):
        raise AssertionError("drawn again")

    monkeypatch.setattr(synthetic_liver, "write_liver_phantoms", no_drawing)
    again = _dm(None, **kwargs)
    again.setup()
    assert again.split_patients == dm.split_patients


# ----------------------------------------------------------------------------- bad input


def test_missing_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _dm(tmp_path / "nowhere").setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no liver data under .*empty.*images/\*\.png"):
        _dm(tmp_path / "empty").setup()
    _per_patient_root(tmp_path / "pngs")
    with pytest.raises(FileNotFoundError, match="volume-"):
        _dm(tmp_path / "pngs", layout="nifti").setup()


def test_image_without_mask_and_the_reverse(tmp_path: Path) -> None:
    root = _per_patient_root(tmp_path)
    (root / "case2" / "masks" / "001.png").unlink()
    with pytest.raises(ValueError, match=r"image .*case2/images/001\.png has no mask"):
        _dm(root).setup()
    (root / "case2" / "images" / "001.png").unlink()
    (root / "case3" / "images" / "002.png").unlink()
    with pytest.raises(ValueError, match=r"mask .*case3/masks/002\.png has no image"):
        _dm(root).setup()


def test_images_folder_without_masks_folder(tmp_path: Path) -> None:
    _write_png_patient(tmp_path, ["a_1.png"])
    for f in (tmp_path / "masks").iterdir():
        f.unlink()
    (tmp_path / "masks").rmdir()
    with pytest.raises(ValueError, match=r"images has no sibling masks/ folder"):
        _dm(tmp_path).setup()


DAMAGED_PNGS = {
    "size mismatch": (
        "case1/masks/000.png",
        lambda path: cv2.imwrite(str(path), np.zeros((30, 24), np.uint8)),
        r"case1/images/000\.png is 24x24 but its mask .* 24x30",
    ),
    "corrupt": (
        "case0/images/001.png",
        lambda path: path.write_bytes(b"not a png at all"),
        r"cannot read image .*case0/images/001\.png",
    ),
    "sixteen bit": (
        "case0/images/001.png",
        lambda path: cv2.imwrite(str(path), np.zeros((24, 24), np.uint16)),
        r"001\.png is a uint16 PNG.*8-bit",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_PNGS))
def test_damaged_png_is_named(tmp_path: Path, damage: str) -> None:
    name, write, message = DAMAGED_PNGS[damage]
    root = _per_patient_root(tmp_path)
    write(root / name)
    with pytest.raises(ValueError, match=message):
        _dm(root).setup()


@pytest.mark.parametrize("value", [128, 3])
def test_mask_value_outside_classes(tmp_path: Path, value: int) -> None:
    root = _per_patient_root(tmp_path)
    mask = np.zeros((24, 24), np.uint8)
    mask[2:5, 2:5] = value
    cv2.imwrite(str(root / "case4" / "masks" / "002.png"), mask)
    with pytest.raises(ValueError, match=rf"case4/masks/002\.png holds value\(s\) {value} outside"):
        _dm(root).setup()


def _six_volumes(root: Path) -> None:
    for key in range(6):
        volume = np.zeros((12, 12, 2), np.int16)
        seg = np.zeros((12, 12, 2), np.uint8)
        seg[3:8, 3:8] = 1
        _write_volume(root, str(key), volume, seg)


def test_segmentation_label_outside_classes(tmp_path: Path) -> None:
    _six_volumes(tmp_path)
    seg = np.zeros((12, 12, 2), np.uint8)
    seg[1, 1, 1] = 3
    _write_volume(tmp_path, "4", np.zeros((12, 12, 2), np.int16), seg)
    with pytest.raises(ValueError, match=r"segmentation-4\.nii\.gz holds label\(s\) \[3\]"):
        _dm(tmp_path).setup()


def test_volume_segmentation_shape_mismatch(tmp_path: Path) -> None:
    _six_volumes(tmp_path)
    nib.save(
        nib.Nifti1Image(np.zeros((12, 10, 2), np.uint8), np.eye(4)),
        tmp_path / "segmentation-2.nii.gz",
    )
    with pytest.raises(ValueError, match=r"volume-2\.nii\.gz has shape \(12, 12, 2\) but .*"):
        _dm(tmp_path).setup()


def test_volume_without_segmentation(tmp_path: Path) -> None:
    _six_volumes(tmp_path)
    (tmp_path / "segmentation-3.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"volume-3\.nii\.gz has no segmentation-3"):
        _dm(tmp_path).setup()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_nifti(tmp_path: Path, damage: str) -> None:
    _six_volumes(tmp_path)
    path = tmp_path / "volume-5.nii.gz"
    if damage == "garbage":
        path.write_bytes(b"this is not nifti")
    else:
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) - 200]))
    with pytest.raises(ValueError, match=r"cannot read .*volume-5\.nii\.gz"):
        _dm(tmp_path).setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 4}, "num_classes"),
        ({"layout": "dicom"}, "layout"),
        ({"hu_window": (400.0, -100.0)}, "hu_window"),
        ({"split_fractions": (0.5, 0.5, 0.5)}, "split_fractions"),
        ({"split": (0.7, 0.16, 0.14)}, r"now data\.split_fractions.*--data\.split_fractions="),
        ({"empty_slice_fraction": 1.5}, "empty_slice_fraction"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LiverDataModule(**kwargs)
