"""Weights from local files: torchvision and USB backbone state dicts, clss models and checkpoints."""

import pytest
import torch
import torchvision

from clss.data.dataset import InputSpec
from clss.engine.checkpoint import save_checkpoint
from clss.methods import build_method
from clss.models import build_model, load_weights

RGB32 = InputSpec("image", (3, 32, 32))


def _randomised_torchvision(arch: str = "resnet18") -> torch.nn.Module:
    """A torchvision ResNet with random weights and non-trivial batch-norm statistics (so that evaluation
    mode is not the identity on them)."""
    torch.manual_seed(3)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net


def _pooled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's backbone, step by step, up to the global average pool."""
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        h = layer(h)
    return h.mean(dim=(2, 3))


def test_resnet_feature_equals_torchvision_pooled_output(tmp_path):
    net = _randomised_torchvision()
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    with pytest.warns(UserWarning, match=r"skipped its classifier \(fc\.weight, fc\.bias\)"):
        model = build_model("resnet18", InputSpec("image", (3, 48, 40)), weights=str(path)).eval()
    x = torch.randn(3, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _pooled(net, x)
        got = model(x)
    assert got["feat"].shape == (3, 512)
    assert torch.allclose(got["feat"], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    # the same file loads into a fresh model identically (round trip of every backbone tensor)
    state = model.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items() if not k.startswith("fc."))


def test_grey_model_from_rgb_weights_equals_rgb_model_on_repeated_channels(tmp_path):
    net = _randomised_torchvision()
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    with pytest.warns(UserWarning, match=r"summed the 3-channel conv1\.weight over its channels"):
        grey = build_model("resnet18", InputSpec("image", (1, 32, 32)), weights=path).eval()
    g = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _pooled(net, g.expand(-1, 3, -1, -1))
        got = grey(g)["feat"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("name", ["resnet18", "wrn28_2", "cnn", "mlp"])
def test_clss_model_state_round_trip(tmp_path, name):
    spec = InputSpec("image", (3, 32, 32))
    torch.manual_seed(0)
    source = build_model(name, spec).eval()
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    target = build_model(name, spec, weights=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x)["pred"], target(x)["pred"])
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in source.state_dict().items())


def test_clss_checkpoint_loads_the_network(tmp_path):
    torch.manual_seed(0)
    method = build_method("supervised", lambda: build_model("cnn", InputSpec("image", (1, 8, 8))))
    path = save_checkpoint(tmp_path / "best.pt", {"step": 3, "method": method.state_dict()}, kind="weights")
    torch.manual_seed(1)
    model = build_model("cnn", InputSpec("image", (1, 8, 8)), weights=str(path))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in method.model.state_dict().items())


def test_usb_wideresnet_state_dict_loads_without_its_classifier(tmp_path):
    torch.manual_seed(0)
    source = build_model("wrn28_2", RGB32)
    usb = {f"module.{k}": v for k, v in source.backbone.state_dict().items()}  # a DataParallel save
    usb.update({"module.fc.weight": torch.randn(10, 128), "module.fc.bias": torch.zeros(10)})
    path = tmp_path / "wrn.pth"
    torch.save(usb, path)
    model = build_model("wrn28_2", RGB32)
    report = load_weights(model, path, "wrn28_2")
    assert "skipped its classifier (fc.weight, fc.bias)" in report
    assert all(
        torch.equal(v, model.backbone.state_dict()[k]) for k, v in source.backbone.state_dict().items()
    )


def test_old_torchvision_files_without_batch_norm_counters_load(tmp_path):
    net = _randomised_torchvision()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    model = build_model("resnet18", RGB32)
    report = load_weights(model, tmp_path / "old.pth", "resnet18")
    assert report.startswith(f"model.weights: loaded {len(state) - 2} tensors from")


def test_weights_file_only_starts_training(tmp_path):
    """A run trained from ``model.weights`` resumes and predicts from its own checkpoints: the file is read
    once, when the training starts."""
    from clss.config import resolve_config
    from clss.engine import train
    from clss.engine.predict import load_predictor

    torch.manual_seed(0)
    start = build_model("mlp", InputSpec("tabular", (10,)), hidden=[8], init="default")
    weights = tmp_path / "start.pt"
    torch.save(start.state_dict(), weights)
    model = {"hidden": [8], "weights": str(weights)}
    cfg = resolve_config({}, {"dataset": "diabetes", "steps": 2, "eval_every": 1, "progress": False,
                              "plots": False, "threads": 1, "model": model})
    run = tmp_path / "run"
    train(cfg, run)
    weights.unlink()
    assert train(None, run, resume=True, overrides={"steps": 3}).summary["status"] == "finished"
    predictor = load_predictor(run)
    assert predictor.method.model.trunk[0].in_features == 10
