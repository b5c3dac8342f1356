"""Cut-down runs: the overrides that make `run.py` take seconds on a CPU, named by what they are
for, and the composed config of the smallest one. The last value of a key wins in Hydra, so a
test appends its own overrides after these."""

from __future__ import annotations

from .paths import CONF

# One run: small enough that it takes a second on one core; learnable enough to beat chance.
# (experiment=quick: synthetic data, a tiny ResNet, one epoch.)
TINY_RUN = [
    "experiment=quick",
    "data.n_train=160",
    "data.n_test=64",
    "data.val_size=64",
    "progress=false",
    "device=cpu",
]

# A trial of a sweep trains for well under a second: a ~6k-parameter model, one thread (a tiny
# model on a busy 2-core machine: epoch 1 takes 0.2 s instead of 6 s).
# (model.C >= 8: a 4-channel channels_last conv crashes torch 2.14's CPU backward with 1 thread.)
TINY_SWEEP = [*TINY_RUN, "threads=1", "model.N=2", "model.B=1", "model.C=8"]

# An ablation sweep that trains every variant and repeat in turn: fewer images per job.
TINY_ABLATION = [
    "experiment=quick",
    "data.n_train=64",
    "data.val_size=32",
    "data.n_test=32",
    "progress=false",
    "device=cpu",
]

# A job that lasts long enough to be killed between its epochs: three epochs of more images.
TINY_TO_INTERRUPT = [
    *TINY_RUN,
    *("data.n_train=480", "data.val_size=32", "data.n_test=32"),
    *("threads=1", "model.N=2", "model.B=1", "epochs=3"),
]

# Appended to every command the docs show (the last value of a key wins in Hydra), unless the
# command sweeps the key: generated images, one epoch, one thread.
TINY_DOCUMENTED = [
    "data=synthetic",
    "data.n_train=64",
    "data.n_test=32",
    "data.val_size=32",
    "data.train_subset=null",
    "epochs=1",
    "progress=false",
    "device=cpu",
    "threads=1",
    "batch_size=32",
]


def compose_cfg(overrides=()):
    """run.py's config with TINY_RUN and then `overrides`, composed in this process."""
    from hydra import compose, initialize_config_dir

    from budgetsweep.trainer import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=[*TINY_RUN, *overrides])
