"""Parameters and FLOPs of the models of a config (mmengine's jit-trace counter).

Conventions (those of fvcore and of mmengine.analysis, which the MixMAE/Swin papers use):
one fused multiply-add counts as ONE FLOP ("FLOPs" here are MACs); convolutions, linear layers,
matrix products and normalization layers are counted; element-wise additions, activations,
softmax and the gathers of the relative position bias are not.

mmengine's counter has no rule for ``aten::scaled_dot_product_attention`` (the fused attention
our blocks use) and would silently skip it.  :func:`sdpa_flop_jit` counts it as the two matrix
products of the reference path, ``q @ k^T`` and ``attn @ v`` (``B*h*Lq*Lk*(E + Ev)``), so the
fused and the reference paths give the same total.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ['sdpa_flop_jit', 'count_flops', 'model_complexity', 'model_kind', 'PretrainForward',
           'format_count']


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs (MACs) of ``scaled_dot_product_attention(q, k, v, ...)``."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    *batch, lq, e = q
    lk = k[-2]
    ev = v[-1]
    n = 1
    for d in batch:
        n *= d
    return n * lq * lk * e + n * lq * lk * ev


def count_flops(module: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Tuple[int, Dict[str, int]]:
    """Total FLOPs of ``module(*inputs)`` and the skipped operators (name -> calls)."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    total = analyzer.total()
    return total, dict(analyzer.unsupported_ops())


class PretrainForward(nn.Module):
    """One MixMAE pretraining forward (mixed encoder pass + dual decoder) with a fixed mask."""

    def __init__(self, model: nn.Module, mask: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer('mask', mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_pretrain(x, self.mask)


class _TensorForward(nn.Module):
    """``model(x, mode='tensor')`` (mmpretrain classifiers, mmseg segmentors)."""

    def __init__(self, model: nn.Module, data_samples: Optional[list] = None):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, x: torch.Tensor):
        if self.data_samples is None:
            return self.model(x, mode='tensor')
        return self.model(x, self.data_samples, mode='tensor')


def model_kind(model: nn.Module) -> str:
    """``'mixmae-pretrain' | 'detector' | 'segmentor' | 'classifier'``."""
    if all(getattr(model, n, None) is not None for n in ('backbone', 'neck', 'head')) and \
            hasattr(model, 'mask_ratio') and hasattr(model.backbone, 'check_pretrain_input'):
        return 'mixmae-pretrain'
    module = type(model).__module__
    if module.startswith('mmdet.'):
        return 'detector'
    if module.startswith('mmseg.'):
        return 'segmentor'
    return 'classifier'


def model_complexity(model: nn.Module, shape: Tuple[int, int]) -> dict:
    """Parameters and FLOPs of one image of ``shape = (H, W)``.

    * MixMAE pretraining models: the training forward of a mixed pair (encoder on the two mixed
      images, dual decoder producing ``2B`` predictions; loss not included) divided by 2, with
      the model's mask ratio.
    * classifiers / segmentors: ``model(x, mode='tensor')`` (backbone, neck, head).
    * detectors: ``model(x, samples, mode='tensor')`` (backbone, neck, RPN, RoI heads on the
      RPN's proposals: the count depends on the proposals of the random input).

    Returns:
        ``dict(kind, params, trainable_params, flops, shape, batch, skipped_ops)``.
    """
    h, w = shape
    model = model.eval()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    kind = model_kind(model)
    gen = torch.Generator().manual_seed(0)
    if kind == 'mixmae-pretrain':
        batch = 2
        x = torch.randn(batch, 3, h, w, generator=gen)
        mask = model.sample_mask(x, generator=gen)
        module = PretrainForward(model, mask)
    elif kind == 'detector':
        from mmdet.structures import DetDataSample
        batch = 1
        x = torch.randn(batch, 3, h, w, generator=gen)
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             pad_shape=(h, w), scale_factor=(1.0, 1.0),
                                             batch_input_shape=(h, w)))
        module = _TensorForward(model, [sample])
    else:
        batch = 1
        x = torch.randn(batch, 3, h, w, generator=gen)
        module = _TensorForward(model)
    with torch.no_grad():
        flops, skipped = count_flops(module, (x, ))
    return dict(kind=kind, params=params, trainable_params=trainable, flops=flops / batch,
                shape=(h, w), batch=batch, skipped_ops=skipped)


def format_count(n: float, unit: str = '') -> str:
    """``88344352 -> '88.34M'``."""
    for div, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.2f}{suffix}{unit}'
    return f'{n:.0f}{unit}'
