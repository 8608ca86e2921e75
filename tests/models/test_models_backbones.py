"""Shapes, feature dimensions, input checks, determinism and gradients of every registered model."""

import itertools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clss.config import TrainConfig, parse_overrides, resolve_config
from clss.data.dataset import InputSpec
from clss.models import MODEL_PARAMS, MODELS, ResNetRegressor, build_model

FEATURE_DIM = {"mlp": 100, "resnet18": 512, "resnet34": 512, "resnet50": 2048, "wrn28_2": 128, "cnn": 64}
# (side, batch): small inputs keep the suite fast; ResNet-50 on one 32x32 image only
SIZES = {"mlp": (8, 3), "resnet18": (32, 2), "resnet34": (32, 2), "resnet50": (32, 1), "wrn28_2": (32, 2),
         "cnn": (8, 3)}


def test_every_model_is_covered():
    assert set(FEATURE_DIM) == set(MODELS) == set(MODEL_PARAMS)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(FEATURE_DIM))
def test_output_shapes_and_feature_dims(name, channels):
    side, batch = SIZES[name]
    torch.manual_seed(0)
    model = build_model(name, InputSpec("image", (channels, side, side))).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, channels, side, side))
    assert out["pred"].shape == (batch,)
    assert out["feat"].shape == (batch, FEATURE_DIM[name])
    assert torch.isfinite(out["pred"]).all() and torch.isfinite(out["feat"]).all()


@pytest.mark.parametrize("side", [32, 40])
def test_wrn_takes_32_and_40_px(side):
    model = build_model("wrn28_2", InputSpec("image", (3, side, side))).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, side, side))["feat"].shape == (2, 128)


def _wrn_param_count(depth: int, widen: int, channels: int, outputs: int) -> int:
    """Parameters of WRN-depth-widen, counted from the architecture's description (convolutions with
    biases, two per batch norm, 1x1 projections where the width changes, a linear classifier)."""
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    total = conv(channels, 16, 3)
    for cin, cout in itertools.pairwise(widths):
        for i in range(n):
            c = cin if i == 0 else cout
            total += 2 * c + conv(c, cout, 3) + 2 * cout + conv(cout, cout, 3)
            if c != cout:
                total += conv(c, cout, 1)
    return total + 2 * widths[-1] + widths[-1] * outputs + outputs


def test_wrn28_2_parameter_count():
    model = build_model("wrn28_2", InputSpec("image", (3, 32, 32)))
    count = sum(p.numel() for p in model.parameters())
    assert count == _wrn_param_count(28, 2, 3, 1)
    ten_class = count + 9 * (128 + 1)  # the literature quotes WRN-28-2 with a 10-class head: 1.47M
    assert ten_class == _wrn_param_count(28, 2, 3, 10)
    assert round(ten_class / 1e6, 2) == 1.47
    # every parameter takes part in the forward (distributed training refuses unused ones)
    model(torch.randn(2, 3, 32, 32))["pred"].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_wrn_forward_follows_usb_blocks():
    """The WRN output recomputed with torch.nn.functional from its parameters, block by block as USB's
    code does: BN-leaky ReLU first; where the width changes, conv and 1x1 shortcut take the activated
    input."""
    torch.manual_seed(2)
    model = build_model("wrn28_2", InputSpec("image", (3, 32, 32))).eval()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    p = dict(model.named_parameters())
    b = dict(model.named_buffers())

    def bn_act(h, name):
        h = F.batch_norm(h, b[f"{name}.running_mean"], b[f"{name}.running_var"], p[f"{name}.weight"],
                         p[f"{name}.bias"], False, 0.0, 1e-3)
        return F.leaky_relu(h, 0.1)

    def conv(h, name, stride=1, pad=1):
        return F.conv2d(h, p[f"{name}.weight"], p[f"{name}.bias"], stride, pad)

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = conv(x, "backbone.conv1")
        for stage, stride in ((1, 1), (2, 2), (3, 2)):
            for i in range(4):
                name = f"backbone.block{stage}.layer.{i}"
                s = stride if i == 0 else 1
                a = bn_act(h, f"{name}.bn1")
                out = conv(bn_act(conv(a, f"{name}.conv1", s), f"{name}.bn2"), f"{name}.conv2")
                shortcut = conv(a, f"{name}.convShortcut", s, 0) if f"{name}.convShortcut.weight" in p else h
                h = shortcut + out
        feat = bn_act(h, "backbone.bn1").mean(dim=(2, 3))
        got = model(x)
    assert torch.allclose(got["feat"], feat, rtol=1e-4, atol=1e-5 * float(feat.abs().max()))
    expected = feat @ p["head.weight"].T.squeeze(-1) + p["head.bias"]
    assert torch.allclose(got["pred"], expected, rtol=1e-4, atol=1e-5 * float(expected.detach().abs().max()))


def test_resnet_small_input_keeps_the_resolution():
    maps = {}
    for small in (False, True):
        model = ResNetRegressor("resnet18", 3, small_input=small).eval()
        model.backbone.layer4.register_forward_hook(lambda m, i, o, s=small: maps.__setitem__(s, o.shape))
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
    assert maps[False][-2:] == (1, 1) and maps[True][-2:] == (4, 4)
    assert ResNetRegressor("resnet18", 1, small_input=True).backbone.conv1.kernel_size == (3, 3)


@pytest.mark.parametrize("side", [8, 28])
@pytest.mark.parametrize("blocks", [1, 3])
def test_cnn_sizes_and_blocks(side, blocks):
    model = build_model("cnn", InputSpec("image", (1, side, side + 3)), channels=8, blocks=blocks).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, side, side + 3))
    assert out["feat"].shape == (2, 8 * 2 ** (blocks - 1))


def test_mlp_flattens_images():
    model = build_model("mlp", InputSpec("image", (1, 8, 8)), hidden=[16])
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(model(x)["pred"], model(x.flatten(1))["pred"])
    assert model.trunk[0].in_features == 64


@pytest.mark.parametrize("name", [n for n in MODELS if n != "mlp"])
def test_image_models_refuse_tabular_inputs(name):
    with pytest.raises(ValueError, match=rf"^model '{name}' takes image inputs, but the data's inputs are "
                                         r"tabular of shape \(5,\); the 'mlp' model takes them$"):
        build_model(name, InputSpec("tabular", (5,)))


@pytest.mark.parametrize("name", list(FEATURE_DIM))
def test_same_seed_same_model(name):
    side = SIZES[name][0]
    spec = InputSpec("image", (3, side, side))
    x = torch.randn(2, 3, side, side)  # two rows: batch norm needs them in training mode
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model(name, spec, dropout=0.1).train()
        outs.append((model.state_dict(), model(x)))
    (s1, o1), (s2, o2) = outs
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    for key in ("pred", "feat"):  # same weights and dropout draws: same outputs
        assert torch.allclose(o1[key], o2[key], rtol=1e-6, atol=1e-6 * float(o1[key].detach().abs().max()))


@pytest.mark.parametrize("name", list(FEATURE_DIM))
def test_train_mode_backward_gives_finite_gradients(name):
    side = SIZES[name][0]
    torch.manual_seed(1)
    model = build_model(name, InputSpec("image", (3, side, side)), dropout=0.1).train()
    out = model(torch.randn(2, 3, side, side))
    (out["pred"].square().mean() + out["feat"].square().mean()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_feature_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = build_model("cnn", InputSpec("image", (1, 8, 8)), dropout=0.5)
    x = torch.randn(4, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["feat"], model(x)["feat"])
        model.train()
        a, b = model(x)["feat"], model(x)["feat"]
    assert not torch.equal(a, b) and bool(((a == 0) | (b == 0)).any())


def test_model_keys_are_validated_by_name():
    values = parse_overrides(["model.name=resnet18", "model.dropout=0.05", "model.small_input=true"])
    cfg = TrainConfig.from_dict(values)
    assert cfg.model == {"name": "resnet18", "dropout": 0.05, "small_input": True}
    # over the defaults and a dataset preset (an MLP's keys), as the command line resolves it
    for dataset in ("diabetes", "operator-sde"):
        sets = parse_overrides(["model.name=wrn28_2", "model.dropout=0.05"])
        cfg = resolve_config({}, {"dataset": dataset, **sets})
        assert cfg.model == {"name": "wrn28_2", "dropout": 0.05}
    merged = resolve_config({}, {"model": {"dropout": 0.2}}).model  # same model: the preset's keys stay
    assert merged == {**resolve_config().model, "dropout": 0.2}
    with pytest.raises(ValueError, match=r"model\.dropout must be a float in \[0, 1\), got 1\.5"):
        TrainConfig.from_dict(parse_overrides(["model.name=wrn28_2", "model.dropout=1.5"]))
    with pytest.raises(ValueError, match=r"unknown key 'model\.hidden'"):
        TrainConfig.from_dict(parse_overrides(["model.name=cnn", "model.hidden=[8]"]))


_DOWNLOADERS = re.compile(r"load_state_dict_from_url|download_url_to_file|torch\.hub|get_state_dict\(|"
                          r"IMAGENET1K|_Weights\b|weights=[\"']DEFAULT|pretrained=True|urlretrieve|urlopen")


def test_no_code_path_downloads_weights(monkeypatch, tmp_path):
    root = Path(__file__).resolve().parents[2]
    sources = [*root.joinpath("clss").rglob("*.py"), *root.joinpath("cli").rglob("*.py")]
    assert len(sources) > 20
    offenders = [f"{p.relative_to(root)}:{i}" for p in sources
                 for i, line in enumerate(p.read_text().splitlines(), 1) if _DOWNLOADERS.search(line)]
    assert offenders == []
    # and building every model touches neither torch's hub nor its cache folder
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    for name in MODELS:
        build_model(name, InputSpec("image", (3, 32, 32)))
    assert not (tmp_path / "hub").exists()

