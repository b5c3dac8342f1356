import subprocess
import sys
import warnings

import pytest
import torch

from budgetsweep import models
from budgetsweep.models.count import flops_by_tracing
from budgetsweep.models.resnet import EvenSameConv2d

from helpers import ROOT

SEED_FINAL = dict(name="resnet", N=3, B=3, C=68, F=3, K=1, P=7, stem_kernel=2)


def resnet_params_by_hand(N, B, C, F, K, P, stem_kernel, classes=10, size=32):
    """The family's parameter count from its description alone (convs have no bias; BN has 2 per channel)."""
    blocks = B if isinstance(B, list) else [B] * N
    widths = C if isinstance(C, list) else [C * 2**i for i in range(N)]
    kernels = F if isinstance(F, list) else [F] * N
    total = 3 * widths[0] * stem_kernel**2 + 2 * widths[0]
    c_in = widths[0]
    for i in range(N):
        for j in range(blocks[i]):
            c_out, k = widths[i], kernels[i]
            total += k * k * c_in * c_out + 2 * c_out + k * k * c_out * c_out + 2 * c_out
            if (i > 0 and j == 0) or c_in != c_out:
                total += K * K * c_in * c_out + 2 * c_out
            c_in = c_out
    final = size // 2 ** (N - 1)
    pooled = (final - P) // P + 1
    return total + widths[-1] * pooled**2 * classes + classes


def test_seed_final_has_the_studys_parameter_count():
    assert models.count_params(SEED_FINAL) == 4_883_906


def test_a_3x3_stem_adds_exactly_the_kernel_difference():
    assert models.count_params({**SEED_FINAL, "stem_kernel": 3}) == 4_884_926


def test_smallest_config_counted_by_hand():
    # stem 3*4*9 + BN 8 = 116; one block, no shortcut: 2*(9*4*4 + 8) = 304; head 4*10 + 10 = 50
    assert models.count_params(dict(name="resnet", N=1, B=1, C=4, F=3, K=1, P=32, stem_kernel=3)) == 470


@pytest.mark.parametrize(
    "cfg",
    [
        dict(N=3, B=1, C=16, F=3, K=1, P=8, stem_kernel=3),
        dict(N=4, B=[1, 2, 1, 2], C=[8, 16, 20, 40], F=[3, 5, 3, 1], K=3, P=2, stem_kernel=5),
        dict(N=2, B=2, C=12, F=5, K=2, P=4, stem_kernel=1),  # pooled map 4x4: head sees 16x the channels
        dict(N=6, B=1, C=4, F=3, K=1, P=1, stem_kernel=3),  # 1x1 final map
    ],
)
def test_counts_match_an_independent_computation(cfg):
    assert models.count_params(dict(name="resnet", **cfg)) == resnet_params_by_hand(**cfg)
    built = models.create_model(dict(name="resnet", **cfg))
    assert sum(p.numel() for p in built.parameters()) == resnet_params_by_hand(**cfg)


@pytest.mark.parametrize(
    "cfg",
    [
        SEED_FINAL,
        dict(name="resnet", N=4, B=[1, 2, 1, 2], C=[8, 16, 20, 40], F=[3, 5, 3, 1], K=3, P=2, stem_kernel=4),
    ],
)
def test_flops_arithmetic_agrees_with_torch_flop_counter(cfg):
    assert models.count_flops(cfg) == flops_by_tracing(cfg)


@pytest.mark.parametrize("name", models.list_models())
def test_every_family_trains_every_parameter(name):
    model = models.create_model(dict(name=name))
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    "override,key",
    [
        (dict(C="abc"), "model.C"),
        (dict(N=4, P=9), "model.P"),  # 4x4 final map
        (dict(N=7, P=1), "model.N"),  # 6 halvings of 32 px
        (dict(B=[1, 2]), "model.B"),
        (dict(F=0), "model.F"),
        (dict(K=-1), "model.K"),
        (dict(N=2.5), "model.N"),
        (dict(stem_kernel=True), "model.stem_kernel"),
        (dict(width=3), "model.width"),
        (dict(name="vgg"), "model.name"),
    ],
)
def test_bad_configs_name_the_key(override, key):
    with pytest.raises(models.ConfigError) as err:
        models.count_params({"name": "resnet", **override})
    assert str(err.value).startswith(key + ":")
    assert "\n" not in str(err.value)


def test_sizing_allocates_no_weights():
    from budgetsweep.models.count import _meta_model

    _, model = _meta_model(SEED_FINAL)
    assert all(p.device.type == "meta" for p in model.parameters())


def test_registering_a_family_twice_warns():
    cls, build = models.registry._FAMILIES["resnet"]
    with pytest.warns(UserWarning, match="twice"):
        models.register_model("resnet", cls)(build)


def test_importing_models_leaves_the_warning_filters_alone():
    # torch and numpy add filters of their own when imported: take them first, then ours
    code = "import warnings, torch; before = list(warnings.filters); import models; assert warnings.filters == before"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("k", [2, 4])
def test_an_even_kernel_keeps_the_size_as_same_padding_does_without_a_warning(k):
    conv = EvenSameConv2d(3, 5, k)
    same = torch.nn.Conv2d(3, 5, k, padding="same", bias=False)
    same.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 9, 9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = conv(x)
    assert not caught and out.shape == (2, 5, 9, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's own warning for an even "same" kernel
        assert torch.allclose(out, same(x))
