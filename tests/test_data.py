import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from budgetsweep.data import (
    DataError,
    augment,
    load_dataset,
    load_npz,
    make_synthetic,
    n_train_batches,
    stratified_split,
    train_batches,
)
from budgetsweep.data.sources import SAMPLE_PATH
from budgetsweep.trainer.schema import AugmentConfig, DataConfig


def test_stratified_split_is_disjoint_balanced_and_seeded():
    y = np.repeat(np.arange(10), [100, 100, 100, 100, 100, 50, 50, 50, 50, 50])
    train, val = stratified_split(y, 150, seed=3)
    assert len(val) == 150 and len(train) == len(y) - 150
    assert not set(train) & set(val)
    counts = np.bincount(y[val], minlength=10)
    assert counts[:5].tolist() == [20] * 5 and counts[5:].tolist() == [10] * 5  # the train split's 2:1 balance
    assert np.array_equal(val, stratified_split(y, 150, seed=3)[1])
    assert not np.array_equal(val, stratified_split(y, 150, seed=4)[1])


def test_split_that_leaves_nothing_to_train_is_refused():
    with pytest.raises(DataError, match="data.val_size"):
        stratified_split(np.arange(10) % 2, 10, seed=0)


def test_shipped_sample_is_real_balanced_and_small():
    assert SAMPLE_PATH.stat().st_size < 10 * 2**20
    a = load_npz(SAMPLE_PATH)
    assert a.x_train.shape == (2500, 32, 32, 3) and a.x_test.shape == (500, 32, 32, 3)
    assert np.bincount(a.y_train).tolist() == [250] * 10 and np.bincount(a.y_test).tolist() == [50] * 10
    assert a.classes[0] == "airplane" and a.classes[9] == "truck"
    # real CIFAR-10 statistics (published train mean 0.4914, 0.4822, 0.4465), not noise
    assert np.allclose(a.x_train.reshape(-1, 3).mean(0) / 255, [0.4914, 0.4822, 0.4465], atol=0.01)


def test_dataset_lives_on_the_device_as_uint8():
    cfg = OmegaConf.structured(DataConfig(name="cifar10_sample", val_size=500))
    ds = load_dataset(cfg, "cpu")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape == (2000, 3, 32, 32)
    assert len(ds.y_val) == 500 and torch.bincount(ds.y_val).tolist() == [50] * 10
    assert ds.num_classes == 10


def test_npz_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not an .npz"):
        load_npz(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="lacks the arrays y_train, x_test, y_test"):
        load_npz(tmp_path / "partial.npz")
    np.savez(
        tmp_path / "floats.npz",
        x_train=np.zeros((2, 32, 32, 3)),
        y_train=np.zeros(2, int),
        x_test=np.zeros((2, 32, 32, 3), np.uint8),
        y_test=np.zeros(2, int),
    )
    with pytest.raises(DataError, match="NHWC uint8"):
        load_npz(tmp_path / "floats.npz")


def test_flip_mirrors_about_half_the_batch():
    x = torch.arange(1000 * 4, dtype=torch.uint8).view(1000, 1, 1, 4) % 200
    out = augment.flip_lr(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).all(dim=(1, 2, 3))
    assert (flipped | (out == x).all(dim=(1, 2, 3))).all()
    assert 400 < flipped.sum() < 600


def test_random_crop_keeps_shape_and_shifts_content():
    x = torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment.random_crop(x, 0, gen), x)
    out = augment.random_crop(x, 4, gen)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x)
    # every crop is a window of the reflect-padded image
    padded = torch.nn.functional.pad(x.float(), (4,) * 4, mode="reflect")
    for i in range(8):
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # (3, 9, 9, 32, 32)
        assert (windows == out[i].float().view(3, 1, 1, 32, 32)).all(dim=(0, 3, 4)).any()


def test_cutout_zeros_one_square():
    x = torch.full((8, 3, 32, 32), 7, dtype=torch.uint8)
    out = augment.cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out == 0).all(dim=1).sum(dim=(1, 2))
    assert ((zeros > 0) & (zeros <= 81)).all()


def test_batches_cover_the_epoch_and_are_normalised():
    a = make_synthetic(100, 10, 10, 32)
    ds = load_dataset(OmegaConf.structured(DataConfig(name="synthetic", n_train=100, n_test=10, val_size=0)), "cpu")
    assert len(ds.y_train) == len(a.y_train)
    gen = torch.Generator().manual_seed(0)
    batches = list(train_batches(ds, 32, gen, AugmentConfig(crop_padding=0, flip=False)))
    assert len(batches) == n_train_batches(100, 32) == 3  # 32+32+32, the last 4 dropped
    assert n_train_batches(100, 40) == 3 and n_train_batches(10, 32) == 1
    xs = torch.cat([b[0] for b in batches])
    assert xs.dtype == torch.float32 and abs(xs.mean().item()) < 0.1 and abs(xs.std().item() - 1) < 0.1
    assert len(set(torch.cat([b[1] for b in batches]).tolist())) > 1


def test_synthetic_data_is_seeded():
    a, b = make_synthetic(20, 5, 4, 16), make_synthetic(20, 5, 4, 16)
    assert np.array_equal(a.x_train, b.x_train) and a.x_train.shape == (20, 16, 16, 3)


@pytest.mark.parametrize("padding,flip", [(0, False), (0, True), (4, False), (4, True)])
def test_flip_crop_is_the_gather_of_flip_then_crop(padding, flip):
    x = torch.randint(0, 255, (40, 3, 8, 8), dtype=torch.uint8)
    idx = torch.tensor([5, 0, 39, 5, 17])
    out = augment.flip_crop(x, idx, padding, flip, torch.Generator().manual_seed(1))
    # the same draws, the obvious way: mirror the chosen images, pad, cut each window by slicing
    gen = torch.Generator().manual_seed(1)
    mirror = torch.rand(5, generator=gen) < 0.5 if flip else torch.zeros(5, dtype=torch.bool)
    shifts = torch.randint(0, 2 * padding + 1, (2, 5), generator=gen) if padding else torch.zeros(2, 5, dtype=int)
    for i, j in enumerate(idx):
        img = x[j].flip(-1) if mirror[i] else x[j]
        padded = torch.nn.functional.pad(img[None].float(), (padding,) * 4, mode="reflect")[0] if padding else img
        dy, dx = shifts[:, i].tolist()
        assert torch.equal(out[i].float(), padded[:, dy : dy + 8, dx : dx + 8].float())
    assert out.dtype == torch.uint8 and out.is_contiguous(memory_format=torch.channels_last)


def test_a_loaded_dataset_is_reused_until_its_config_or_file_changes(tmp_path):
    a = make_synthetic(60, 20, 10, 8)
    path = tmp_path / "a.npz"
    np.savez(path, x_train=a.x_train, y_train=a.y_train, x_test=a.x_test, y_test=a.y_test)
    cfg = OmegaConf.structured(DataConfig(name="npz", path=str(path), val_size=10))
    first = load_dataset(cfg, "cpu")
    assert load_dataset(cfg, "cpu") is first  # the next trial of an in-process sweep
    cfg.augment.flip = False  # augmentation is applied per batch: the same arrays
    assert load_dataset(cfg, "cpu") is first
    cfg.val_size = 20
    assert len(load_dataset(cfg, "cpu").y_val) == 20
    cfg.val_size = 10
    np.savez(path, x_train=a.x_train[:40], y_train=a.y_train[:40], x_test=a.x_test, y_test=a.y_test)
    assert len(load_dataset(cfg, "cpu").y_train) == 30  # the file was rewritten: read again
