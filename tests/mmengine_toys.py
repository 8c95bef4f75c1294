"""Tiny mmengine components shared by tests/test_compat and tests/test_tools.

Import name ``mmengine_toys`` (``pytest.ini`` puts ``tests/`` on the import path and, for
subprocesses, on ``PYTHONPATH``; configs reach it with ``custom_imports``).
Everything is registered in mmengine's root registries with ``force=True`` so
that re-importing the module is harmless.

* ``ToyRegressor``: one ``nn.Linear(in_dim, 1)`` trained with mean squared
  error; ``last_pred_dtype`` records the dtype of the last forward (AMP test).
* ``ToyRegressionDataset``: ``length`` fixed samples ``x ~ N(0, 1)`` (seeded),
  ``y = x @ [1, 2, ..., in_dim] + 0.5``.
* ``ToyMSEMetric``: mean squared error of ``predict`` outputs.
* ``ParamDumpHook``: saves the model's parameters, rank, world size,
  backend, wrapper class, iteration and the message hub's ``train/loss``
  history to ``{work_dir}/params_{before,after}_rank{R}.pt`` (before and
  after training).
* ``sgd_reference``: what plain SGD on that regression gives, in float64 (the tools' tests
  compare a training run's parameters with it).
"""
import os.path as osp

import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS
from torch.utils.data import Dataset


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):

    def __init__(self, in_dim=4, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.linear = nn.Linear(in_dim, 1)
        self.last_pred_dtype = None

    def forward(self, inputs, targets=None, mode='tensor'):
        pred = self.linear(inputs).squeeze(-1)
        self.last_pred_dtype = pred.dtype
        if mode == 'loss':
            return dict(loss=((pred.float() - targets)**2).mean())
        if mode == 'predict':
            return [
                dict(pred=p.float(), target=t)
                for p, t in zip(pred.detach(), targets)
            ]
        return pred


def toy_data(length=32, in_dim=4, seed=0):
    """The samples of ``ToyRegressionDataset`` as two tensors."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(length, in_dim, generator=gen)
    y = x @ torch.arange(1., in_dim + 1) + 0.5
    return x, y


@DATASETS.register_module(force=True)
class ToyRegressionDataset(Dataset):
    metainfo = dict(classes=('y', ))

    def __init__(self, length=32, in_dim=4, seed=0):
        self.x, self.y = toy_data(length, in_dim, seed)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=self.x[idx], targets=self.y[idx])


@METRICS.register_module(force=True)
class ToyMSEMetric(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append(
                float((sample['pred'] - sample['target'])**2))

    def compute_metrics(self, results):
        return dict(mse=sum(results) / len(results))


@HOOKS.register_module(force=True)
class ParamDumpHook(Hook):
    priority = 'LOWEST'

    def _dump(self, runner, stage):
        import torch.distributed as dist
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        backend = dist.get_backend() if dist.is_initialized() else None
        loss = runner.message_hub.log_scalars.get('train/loss')
        torch.save(
            dict(
                params={
                    k: v.detach().clone()
                    for k, v in model.named_parameters()
                },
                rank=runner.rank,
                world_size=runner.world_size,
                backend=backend,
                wrapper=type(runner.model).__name__,
                iter=runner.iter,
                loss_history=None if loss is None else loss.data[0].copy()),
            osp.join(runner.work_dir, f'params_{stage}_rank{runner.rank}.pt'))

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')


def sgd_reference(params, x, y, lr, steps, batch):
    """Plain SGD on the mean squared error, batches taken in order."""
    w = params['linear.weight'].double().clone().requires_grad_(True)
    b = params['linear.bias'].double().clone().requires_grad_(True)
    for i in range(steps):
        xb = x[i * batch:(i + 1) * batch].double()
        yb = y[i * batch:(i + 1) * batch].double()
        loss = ((xb @ w.T).squeeze(-1) + b - yb).pow(2).mean()
        gw, gb = torch.autograd.grad(loss, (w, b))
        with torch.no_grad():
            w -= lr * gw
            b -= lr * gb
    return {'linear.weight': w.detach(), 'linear.bias': b.detach()}
