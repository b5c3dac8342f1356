"""A plain PyTorch Hydra app that uses budgetsweep's sweepers and nothing else of it.

    cd examples/mlp
    python train.py                                              # one run
    python train.py -m hydra/sweeper=budget_optuna \
        'model.hidden=int(interval(4,64))' 'model.depth=range(1,4)' 'lr=tag(log,interval(1e-3,1e-1))' \
        '+hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:3,n_warmup_steps:2}'
    python train.py -m hydra/sweeper=ablation model.hidden=8,32 model.depth=1,3 hydra.sweeper.repeats=2

The sweepers size each config's `model` node on the meta device (no weights) and never train
one over `budget.max_params`; `trial_reporter()` reports each epoch's validation loss to the
job's Optuna trial and says when the pruner stops it (a no-op outside a sweep). The data is
generated: the sign of x0 * x1 of Gaussian points, a task an MLP needs a hidden layer for.
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from budgetsweep.sweeper.trial_reporter import trial_reporter


def make_data(n: int, features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()
    return x, y


@hydra.main(config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)  # a tiny model: one thread, so parallel trials do not fight over cores
    x, y = make_data(cfg.data.n_train + cfg.data.n_val, cfg.model.in_features, cfg.data.seed)
    n = cfg.data.n_train
    x_train, y_train, x_val, y_val = x[:n], y[:n], x[n:], y[n:]
    model = hydra.utils.instantiate(cfg.model, _execution_whitelist_=("mlp.*",))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    reporter = trial_reporter()
    val_loss = float("nan")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for i in range(0, cfg.data.n_train, cfg.batch_size):
            optimizer.zero_grad()
            loss_fn(model(x_train[i : i + cfg.batch_size]), y_train[i : i + cfg.batch_size]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        print(f"epoch {epoch}: val_loss {val_loss:.4f}")
        if reporter.report(epoch, val_loss):  # the pruner stops this trial
            break
    return val_loss


if __name__ == "__main__":
    main()
