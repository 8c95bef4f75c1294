"""Converting official Sense-X/MixMIM and mmpretrain MixMIM checkpoints to mmmixmae.

Every source key is mapped or dropped by a named rule (:data:`OFFICIAL_RULES`,
:data:`MMPRETRAIN_RULES`, :data:`BACKBONE_RULES`); unknown keys, keys mapped twice, missing
target keys and shape mismatches raise
:class:`~mmmixmae.checkpoint.errors.CheckpointConversionError`.  The result is checked
against the model it describes: the architecture is inferred from the shapes
(:mod:`mmmixmae.checkpoint.arch`), the model is looked up in mmpretrain's registry (by
name; this package imports no model class) and built on CPU, and every key and shape must
agree.  The command-line wrapper is :func:`mmmixmae.apis.converters.run_converter`.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .arch import infer_backbone_config, infer_decoder_config
from .errors import CheckpointConversionError, CheckpointMismatchError
from .layout import sincos_layout, unfold_to_block_major
from .report import listing
from .state_dict import StateDict, strip_prefix

__all__ = [
    'ConversionResult', 'OFFICIAL_RULES', 'MMPRETRAIN_RULES', 'BACKBONE_RULES',
    'convert_official', 'convert_mmpretrain', 'extract_backbone', 'save_converted'
]


def _registered(name: str) -> Callable[..., torch.nn.Module]:
    """The class registered as ``name`` in mmpretrain's ``MODELS`` (``import mmmixmae``
    registers the MixMAE modules)."""
    from mmpretrain.registry import MODELS
    cls = MODELS.get(name)
    if cls is None:
        raise RuntimeError(f'{name} is not registered in mmpretrain.registry.MODELS; '
                           'import mmmixmae first')
    return cls


def _module_shapes(name: str, cfg: dict, prefix: str) -> Dict[str, tuple]:
    module = _registered(name)(**cfg)
    return {f'{prefix}{k}': tuple(v.shape) for k, v in module.state_dict().items()}


def _expected_shapes(kind: str, backbone_cfg: dict, decoder_cfg: Optional[dict] = None,
                     head_shapes: Optional[Dict[str, tuple]] = None) -> Dict[str, tuple]:
    """Keys and shapes of the target model (built on CPU, then thrown away)."""
    shapes = _module_shapes('MixMAESwin', backbone_cfg, 'backbone.')
    if kind == 'pretrain':
        shapes.update(_module_shapes('MixMAEDecoder', decoder_cfg, 'neck.'))
    elif kind == 'classifier':
        shapes.update(head_shapes)
    return shapes


@dataclass
class ConversionResult:
    """Output of a converter.

    Attributes:
        state_dict: the converted tensors (mmmixmae names).
        kind: ``'pretrain'`` (backbone + decoder), ``'classifier'`` (backbone +
            ``head.fc``) or ``'backbone'``.
        groups: rule description -> source keys handled by that rule.
        meta: what goes into the ``meta`` entry of the saved checkpoint.
    """
    state_dict: 'OrderedDict[str, torch.Tensor]'
    kind: str
    groups: 'OrderedDict[str, List[str]]' = field(default_factory=OrderedDict)
    meta: dict = field(default_factory=dict)


Rule = Tuple[str, Optional[str], str, Optional[Callable[[torch.Tensor], torch.Tensor]]]

_BLOCK_PARTS = r'(?:norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(?:weight|bias)'
_WB = r'(?:weight|bias)'

MAPPED_BACKBONE = 'mapped to backbone.* (same name)'
MAPPED_DECODER = 'mapped to neck.* (decoder, same name)'
DROPPED_INDEX = 'dropped: relative_position_index (rebuilt from the window size)'

OFFICIAL_RULES: List[Rule] = [
    (r'layers\.\d+\.blocks\.\d+\.attn\.relative_position_index', None, DROPPED_INDEX, None),
    (rf'(absolute_pos_embed|patch_embed\.(?:proj|norm)\.{_WB}|norm\.{_WB})', r'backbone.\1',
     MAPPED_BACKBONE, None),
    (rf'(layers\.\d+\.blocks\.\d+\.{_BLOCK_PARTS})', r'backbone.\1', MAPPED_BACKBONE, None),
    (r'(layers\.\d+\.blocks\.\d+\.attn\.relative_position_bias_table)', r'backbone.\1',
     MAPPED_BACKBONE, None),
    (rf'(layers\.\d+\.downsample\.(?:norm\.{_WB}|reduction\.weight))', r'backbone.\1',
     MAPPED_BACKBONE, None),
    (rf'(mask_token|decoder_pos_embed|decoder_(?:embed|norm|pred)\.{_WB})', r'neck.\1',
     MAPPED_DECODER, None),
    (rf'(decoder_blocks\.\d+\.{_BLOCK_PARTS})', r'neck.\1', MAPPED_DECODER, None),
    (rf'head\.({_WB})', r'head.fc.\1', 'mapped head.* -> head.fc.* (LinearClsHead)', None),
]

_MM_RENAME = 'renamed from mmpretrain module names'
_MM_REORDER = 'patch merging: nn.Unfold channel order -> block-major (reordered)'
MMPRETRAIN_RULES: List[Rule] = [
    (r'backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index', None, DROPPED_INDEX,
     None),
    (r'data_preprocessor\..+', None, 'dropped: data_preprocessor buffers', None),
    (rf'backbone\.patch_embed\.projection\.({_WB})', r'backbone.patch_embed.proj.\1',
     _MM_RENAME, None),
    (rf'backbone\.(absolute_pos_embed|patch_embed\.norm\.{_WB}|norm\.{_WB})', r'backbone.\1',
     'same name', None),
    (rf'(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)\.ln1\.({_WB})',
     r'\1.norm1.\2', _MM_RENAME, None),
    (rf'(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)\.ln2\.({_WB})',
     r'\1.norm2.\2', _MM_RENAME, None),
    (rf'(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)\.ffn\.layers\.0\.0\.'
     rf'({_WB})', r'\1.mlp.fc1.\2', _MM_RENAME, None),
    (rf'(backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)\.ffn\.layers\.1\.'
     rf'({_WB})', r'\1.mlp.fc2.\2', _MM_RENAME, None),
    (rf'((?:backbone\.layers\.\d+\.blocks\.\d+|neck\.decoder_blocks\.\d+)\.attn\.'
     rf'(?:qkv|proj)\.{_WB})', r'\1', 'same name', None),
    (r'(backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_bias_table)', r'\1',
     'same name', None),
    (rf'(backbone\.layers\.\d+\.downsample\.(?:norm\.{_WB}|reduction\.weight))', r'\1',
     _MM_REORDER, unfold_to_block_major),
    (rf'(neck\.(?:mask_token|decoder_pos_embed|decoder_(?:embed|pred)\.{_WB}))', r'\1',
     'same name', None),
    (rf'neck\.ln1\.({_WB})', r'neck.decoder_norm.\1', _MM_RENAME, None),
    (rf'(head\.fc\.{_WB})', r'\1', 'same name', None),
]

BACKBONE_RULES: List[Rule] = [
    (r'backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index', None, DROPPED_INDEX,
     None),
    (r'(backbone\..+)', r'\1', 'kept backbone.*', None),
    (r'neck\..+', None, 'dropped: neck.* (decoder)', None),
    (r'head\..+', None, 'dropped: head.*', None),
    (r'data_preprocessor\..+', None, 'dropped: data_preprocessor buffers', None),
]


def _apply_rules(sd: StateDict, rules: Sequence[Rule], source: str, hint: str = ''):
    compiled = [(re.compile(p), t, name, fn) for p, t, name, fn in rules]
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    groups: 'OrderedDict[str, List[str]]' = OrderedDict()
    unknown, clashes = [], []
    for key, value in sd.items():
        for pattern, target, name, fn in compiled:
            m = pattern.fullmatch(key)
            if m is None:
                continue
            groups.setdefault(name, []).append(key)
            if target is not None:
                new_key = m.expand(target)
                if new_key in out:
                    clashes.append(f'{key} -> {new_key}')
                out[new_key] = fn(value) if fn is not None else value
            break
        else:
            unknown.append(key)
    if unknown or clashes:
        lines = [f'{source}: not converted; no rule covers these keys.']
        lines += listing('unknown keys', unknown)
        lines += listing('keys mapped twice', clashes)
        if hint:
            lines.append(hint)
        raise CheckpointConversionError('\n'.join(lines), source)
    return out, groups


def _check_against_target(converted: StateDict, kind: str, source: str) -> dict:
    """Build the target model from the converted shapes and compare key sets and shapes."""
    backbone = strip_prefix(converted, 'backbone.')
    if not backbone:
        raise CheckpointConversionError(f'{source}: no backbone keys after conversion')
    backbone_cfg = infer_backbone_config(backbone)
    decoder_cfg = infer_decoder_config(strip_prefix(converted, 'neck.')) if kind == 'pretrain' \
        else None
    head_shapes = None
    if kind == 'classifier':
        w = converted.get('head.fc.weight')
        if w is None or w.dim() != 2:
            raise CheckpointConversionError(f'{source}: the classifier head needs a 2-D '
                                            "'head.weight' / 'head.fc.weight'")
        head_shapes = {'head.fc.weight': (w.shape[0], w.shape[1]), 'head.fc.bias': (w.shape[0], )}
    try:
        expected = _expected_shapes(kind, backbone_cfg, decoder_cfg, head_shapes)
    except ValueError as err:  # e.g. a window that does not divide its grid
        raise CheckpointConversionError(f'{source}: the inferred model cannot be built: {err}') \
            from None
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    mismatched = [(k, tuple(converted[k].shape), expected[k]) for k in converted
                  if k in expected and tuple(converted[k].shape) != expected[k]]
    if missing or unexpected or mismatched:
        err = CheckpointMismatchError(source, missing, unexpected, mismatched,
                                      what=f'inferred mmmixmae {kind} model')
        raise CheckpointConversionError(
            str(err).replace('nothing was loaded', 'not converted'), source)
    info = dict(backbone=backbone_cfg)
    if decoder_cfg is not None:
        info['decoder'] = decoder_cfg
    if head_shapes is not None:
        info['num_classes'] = head_shapes['head.fc.weight'][0]
    return info


def _layouts(converted: StateDict) -> dict:
    return {k: sincos_layout(converted[k])
            for k in ('backbone.absolute_pos_embed', 'neck.decoder_pos_embed') if k in converted}


def _kind(converted: StateDict) -> str:
    if any(k.startswith('neck.') for k in converted):
        return 'pretrain'
    if any(k.startswith('head.') for k in converted):
        return 'classifier'
    return 'backbone'


def _convert(sd: StateDict, rules, source: str, hint: str, origin: str) -> ConversionResult:
    """Apply one converter's key rules, then check the result against the model it names."""
    converted, groups = _apply_rules(sd, rules, source, hint)
    kind = _kind(converted)
    info = _check_against_target(converted, kind, source)
    meta = dict(converted_from=origin, kind=kind, pos_embed_layout=_layouts(converted), **info)
    return ConversionResult(converted, kind, groups, meta)


def convert_official(sd: StateDict, source: str = '<official checkpoint>') -> ConversionResult:
    """Official Sense-X/MixMIM state dict (``checkpoint['model']``) -> mmmixmae.

    Pretraining checkpoints become ``backbone.*`` + ``neck.*`` (a ``MixMAE``
    model); fine-tuned ones ``backbone.*`` + ``head.fc.*`` (an mmpretrain
    ``ImageClassifier`` with ``LinearClsHead``).  Position tables are copied as
    they are (official = MAE layout).
    """
    hint = ''
    if any(k.startswith('backbone.') for k in sd):
        hint = ('the keys start with backbone.: this is an mmengine checkpoint (mmpretrain: use '
                'mmpretrain_mixmim_to_mmmixmae.py; mmmixmae: no conversion needed)')
    return _convert(sd, OFFICIAL_RULES, source, hint, 'Sense-X/MixMIM (official)')


def convert_mmpretrain(sd: StateDict, source: str = '<mmpretrain checkpoint>') -> ConversionResult:
    """mmpretrain MixMIM state dict -> mmmixmae.

    Accepts ``MixMIM`` (``backbone.*`` + ``neck.*``) and ``ImageClassifier``
    (``backbone.*`` + ``head.fc.*``) state dicts, and bare ``MixMIMTransformer``
    state dicts (no ``backbone.`` prefix anywhere; one is added).
    """
    if not any(k.startswith('backbone.') for k in sd):
        sd = OrderedDict((f'backbone.{k}', v) for k, v in sd.items())
    hint = ''
    if any(re.search(r'\.(norm1|mlp\.fc1|proj)\.', k) for k in sd):
        hint = ('official / mmmixmae module names found (norm1, mlp.fc1, patch_embed.proj): '
                'official checkpoints go through mixmim_official_to_mmmixmae.py, mmmixmae '
                'checkpoints need no conversion')
    return _convert(sd, MMPRETRAIN_RULES, source, hint, 'mmpretrain MixMIM')


def extract_backbone(sd: StateDict, source: str = '<mmmixmae checkpoint>') -> ConversionResult:
    """mmmixmae pretraining / fine-tuning state dict -> ``backbone.*`` only (mmdet/mmseg)."""
    if not any(k.startswith('backbone.') for k in sd):
        raise CheckpointConversionError(
            f'{source} has no backbone.* keys (first keys: {list(sd)[:5]}); official '
            'Sense-X/MixMIM checkpoints go through mixmim_official_to_mmmixmae.py and '
            'mmpretrain ones through mmpretrain_mixmim_to_mmmixmae.py first')
    converted, groups = _apply_rules(sd, BACKBONE_RULES, source)
    info = _check_against_target(converted, 'backbone', source)
    meta = dict(converted_from='mmmixmae (backbone only)', kind='backbone',
                pos_embed_layout=_layouts(converted), **info)
    return ConversionResult(converted, 'backbone', groups, meta)


def save_converted(result: ConversionResult, dst: str, source: str) -> None:
    """Write ``{'meta': ..., 'state_dict': ...}`` (mmengine layout) to ``dst``."""
    from mmmixmae.version import __version__
    meta = dict(result.meta, source=os.path.abspath(source), mmmixmae_version=__version__)
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    torch.save(dict(meta=meta, state_dict=result.state_dict), dst)


def save_converted(result: ConversionResult, dst: str, source: str) -> None:
    """Write ``{'meta': ..., 'state_dict': ...}`` (mmengine layout) to ``dst``."""
    from mmmixmae.version import __version__
    meta = dict(result.meta, source=os.path.abspath(source), mmmixmae_version=__version__)
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    torch.save(dict(meta=meta, state_dict=result.state_dict), dst)
