"""Attention work of pretraining: multiply-adds of ``q k^T`` and ``attn v`` per stage.

Per image, a block with ``nH`` heads of ``d`` channels whose windows hold ``E`` score-matrix
entries per head does ``2 * E * nH * d`` multiply-adds (``E`` of them for the scores, ``E``
for the weighted values).  The dense path has ``E = nW * N^2``; the grouped path
``sum_buckets K * P^2`` (padded slots included); the exact-group ideal ``sum_pieces n^2``.
"""
from typing import Dict, List, Optional

import torch

from .grouped_attention import build_group_plan
from .mixing import random_mixing_mask, stage_masks


def attention_work(backbone, img_size: int = 224, mask_ratio: float = 0.5, num_masks: int = 8,
                   pad_tol: float = 0., seed: int = 0) -> Dict[str, object]:
    """Average attention work of the grouped path as a share of the dense one.

    Args:
        backbone: a ``MixMAESwin`` (only its sizes are read).
        img_size: square pretraining image size.
        mask_ratio: mixing ratio of the drawn masks.
        num_masks: masks drawn (seeded) and averaged over.
        pad_tol: the grouped path's bucket padding tolerance (the path uses 0: exact buckets).

    Returns:
        ``{'stages': [{'stage', 'dense_macs', 'grouped_macs', 'exact_macs', 'share',
        'exact_share'}, ...], 'total': {...same keys but 'stage'}}``, multiply-adds per image.
    """
    if img_size % backbone.encoder_stride:
        raise ValueError(f'img_size {img_size} is not a multiple of {backbone.encoder_stride}')
    gen = torch.Generator().manual_seed(seed)
    cells = img_size // backbone.encoder_stride
    patch = img_size // backbone.patch_size
    grids = [(patch >> i, patch >> i) for i in range(backbone.num_stages)]
    sums = [[0., 0., 0.] for _ in grids]
    for _ in range(num_masks):
        masks = stage_masks(random_mixing_mask((cells, cells), mask_ratio, generator=gen), grids)
        for i, (stage, m, hw) in enumerate(zip(backbone.layers, masks, grids)):
            attn = stage.blocks[0].attn
            plan = build_group_plan(m, hw, attn.window_size, attn.relative_position_index, pad_tol)
            grouped, dense = plan.work()
            # 2 products x nH heads x d channels = 2 x C, per entry and block
            per_entry = 2 * backbone.embed_dims * 2**i * len(stage.blocks)
            for j, e in enumerate((dense, grouped, plan.exact_work())):
                sums[i][j] += per_entry * e / num_masks
    stages: List[Dict[str, float]] = []
    for i, (dense, grouped, exact) in enumerate(sums):
        stages.append(dict(stage=i, dense_macs=dense, grouped_macs=grouped, exact_macs=exact,
                           share=grouped / dense, exact_share=exact / dense))
    tot = [sum(s[j] for s in sums) for j in range(3)]
    total = dict(dense_macs=tot[0], grouped_macs=tot[1], exact_macs=tot[2],
                 share=tot[1] / tot[0], exact_share=tot[2] / tot[0])
    return dict(stages=stages, total=total, img_size=img_size, mask_ratio=mask_ratio,
                num_masks=num_masks, pad_tol=pad_tol)


def format_work(report: Dict[str, object], path: Optional[str] = None) -> str:
    """One line per stage and a total: grouped share of dense next to the exact ideal."""
    lines = []
    for s in report['stages']:
        lines.append(f"stage {s['stage']}: grouped {s['share']:.3f} of dense "
                     f"(exact-group ideal {s['exact_share']:.3f})")
    t = report['total']
    lines.append(f"total: grouped {t['share']:.3f} of dense (ideal {t['exact_share']:.3f}), "
                 f"{t['grouped_macs'] / 1e9:.3f} vs {t['dense_macs'] / 1e9:.3f} GMAC per image")
    return '\n'.join(lines)
