"""Loading local pretrained weights: backbone copied, first conv adapted, head kept, clear errors."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import timm
import torch
from litlab.networks import pretrained as P
from torch.utils.data import DataLoader, TensorDataset


def _resnet(in_chans: int = 1, num_classes: int = 7, seed: int = 0, name: str = "resnet18"):
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes)


def test_local_state_dict_changes_backbone_and_keeps_head(tmp_path: Path) -> None:
    source = _resnet(in_chans=3, num_classes=1000, seed=1)
    path = tmp_path / "imagenet-like.pth"
    torch.save(source.state_dict(), path)
    model = _resnet(in_chans=1, num_classes=7, seed=2)
    head_before = model.fc.weight.clone()
    assert not torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)

    report = P.load_pretrained(model, str(path))

    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert torch.equal(model.bn1.running_mean, source.bn1.running_mean)
    # RGB -> gray: the first conv's kernels are summed over the colour channels.
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert model.fc.weight.shape == (7, 512) and torch.equal(model.fc.weight, head_before)
    assert report.adapted and report.adapted[0].startswith("conv1.weight")
    assert report.head_kept == ["fc.bias", "fc.weight"]
    assert report.missing == [] and report.mismatched == []


def test_litlab_checkpoint_prefix_and_gray_to_two_channels(tmp_path: Path) -> None:
    source = _resnet(in_chans=1, num_classes=7, seed=3)
    ckpt = {
        "epoch": 7,
        "state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}
        | {"criterion.weight": torch.ones(7)},
        "hyper_parameters": {"backbone": "resnet18", "lr": 0.01},
    }
    path = tmp_path / "best.ckpt"
    torch.save(ckpt, path)
    model = _resnet(in_chans=2, num_classes=7, seed=4)
    report = P.load_pretrained(model, str(path))
    assert report.prefix == "net." and report.ignored == ["criterion.weight"]
    # A gray kernel split over two identical channels gives the same response.
    torch.testing.assert_close(model.conv1.weight.sum(1, keepdim=True), source.conv1.weight)
    assert not torch.equal(model.fc.weight, source.fc.weight)  # head not copied by default
    P.load_pretrained(model, str(path), load_head=True)
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_real_lightning_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    from litlab.lightning_modules.classification import ClassificationModule

    module = ClassificationModule(backbone="resnet18", num_classes=3, in_chans=1, lr=0.01)
    data = TensorDataset(torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0]))
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    model = _resnet(in_chans=1, num_classes=7, seed=5)
    report = P.load_pretrained(model, str(path))
    assert report.prefix == "net."
    assert torch.equal(model.layer4[1].conv2.weight, module.net.layer4[1].conv2.weight)


def test_mismatched_file_errors_with_the_list(tmp_path: Path) -> None:
    small = tmp_path / "resnet18.pth"
    torch.save(_resnet(num_classes=7).state_dict(), small)
    with pytest.raises(P.PretrainedLoadError, match=r"(?s)did not load.*Missing: \['layer1\.2"):
        P.load_pretrained(_resnet(name="resnet34"), str(small))
    big = tmp_path / "resnet34.pth"
    torch.save(_resnet(name="resnet34", num_classes=7).state_dict(), big)
    with pytest.raises(P.PretrainedLoadError, match=r"(?s)no place.*Unexpected: \['layer1\.2"):
        P.load_pretrained(_resnet(), str(big))
    # A partial match is accepted only on request, and the report lists the rest.
    report = P.load_pretrained(_resnet(name="resnet34"), str(small), strict_backbone=False)
    assert report.missing and not report.unexpected and report.loaded
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(P.PretrainedLoadError, match="no backbone tensor matched"):
        P.load_pretrained(_resnet(), str(unrelated))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(P.PretrainedLoadError, match="junk.pth"):
        P.load_pretrained(_resnet(), str(junk))


def test_stem_mismatch_names_the_fix(tmp_path: Path) -> None:
    from litlab.networks.stems import adapt_stem_fer48

    fer48 = _resnet()
    adapt_stem_fer48(fer48, 1)
    path = tmp_path / "fer48.pth"
    torch.save(fer48.state_dict(), path)
    with pytest.raises(
        P.PretrainedLoadError, match=r"conv1\.weight: file \(64, 1, 3, 3\).*stem=fer48"
    ):
        P.load_pretrained(_resnet(), str(path))


def test_missing_file_unknown_tag_and_offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        P.load_pretrained(_resnet(), "/nowhere.ckpt")
    with pytest.raises(FileNotFoundError, match="neither an existing file nor a timm"):
        P.load_pretrained(_resnet(), "not_a_model_name")
    monkeypatch.setattr(P, "_hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(P.HubUnavailableError, match=r"--model\.pretrained=/path/to/fer2013"):
        P.load_pretrained(_resnet(), "resnet18.a1_in1k")
