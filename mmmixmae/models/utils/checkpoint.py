"""Reading, checking, loading and converting MixMAE checkpoints.

Three kinds of checkpoints reach mmmixmae:

* **mmmixmae / mmengine** checkpoints (``{'meta', 'state_dict', ...}``), keys
  ``backbone.*`` (official MixMIM names), ``neck.*`` (decoder) or ``head.fc.*``
  (mmpretrain's ``LinearClsHead``);
* **official Sense-X/MixMIM** checkpoints (``{'model', 'optimizer', 'epoch',
  'scaler', 'args'}``): the same names without a prefix, decoder keys
  ``decoder_*`` / ``mask_token`` next to the encoder, ``head.*`` in fine-tuned
  ones.  ``args`` is an ``argparse.Namespace``; it is allowlisted for
  ``torch.load(weights_only=True)`` only while these files are read
  (:func:`read_checkpoint`);
* **mmpretrain** MixMIM checkpoints: mmcv/mmpretrain module names
  (``patch_embed.projection``, ``ln1``, ``ffn.layers.0.0`` ...) and the
  ``nn.Unfold`` channel order in patch merging.

:func:`load_pretrained_backbone` serves ``init_cfg=dict(type='Pretrained', ...)``
of :class:`~mmmixmae.models.MixMAESwin`: it validates the whole checkpoint
before it copies anything, so a checkpoint that does not fit raises
:class:`CheckpointMismatchError` (listing every missing / unexpected key and
every shape mismatch) and leaves the model untouched.

:func:`convert_official`, :func:`convert_mmpretrain` and
:func:`extract_backbone` implement ``tools/model_converters/*``: every source
key is mapped or dropped by a named rule; unknown keys, missing target keys
and shape mismatches raise :class:`CheckpointConversionError`.

Facts the conversions rely on (all checked numerically by the tests):

* mmcv's ``PatchMerging`` gathers the 2x2 neighbours with ``nn.Unfold(2, 2)``,
  so its 4C features are ordered ``c * 4 + (dy * 2 + dx)``; ours (official /
  timm) concatenate the neighbours block-major, ``k * C + c`` with
  ``(dy, dx)`` = (0, 0), (1, 0), (0, 1), (1, 1) for k = 0..3.  The LayerNorm
  weight/bias and the columns of the reduction are permuted accordingly.
* mmpretrain's ``build_2d_sincos_position_embedding`` puts the height
  coordinate in the first half of the channels, MAE/official the width.  The
  tables are nevertheless copied **verbatim**: they are parameters of the
  checkpoint and the other weights were trained with them, so only the
  verbatim table gives the same outputs (swapping the halves changes the
  model; see ``tests/test_models/test_parity_mmpretrain.py``).  The detected
  layout is reported.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import textwrap
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .pos_embed import build_2d_sincos_pos_embed, swap_sincos_halves
from .rel_pos import window_from_table_length

__all__ = [
    'CheckpointMismatchError', 'CheckpointConversionError', 'LoadReport', 'ConversionResult',
    'read_checkpoint', 'find_state_dict', 'load_pretrained_backbone', 'infer_backbone_config',
    'infer_decoder_config', 'unfold_to_block_major', 'block_major_to_unfold',
    'sincos_layout', 'convert_official', 'convert_mmpretrain', 'extract_backbone',
    'save_converted', 'format_conversion_summary', 'run_converter'
]

StateDict = Dict[str, torch.Tensor]


# =============================================================================
# errors
# =============================================================================
def _fmt_shape(shape) -> str:
    return '(' + ', '.join(str(s) for s in shape) + ')'


def _listing(title: str, items: Sequence[str], limit: int = 60) -> List[str]:
    if not items:
        return []
    lines = [f'{title} ({len(items)}):']
    lines += [f'    {item}' for item in items[:limit]]
    if len(items) > limit:
        lines.append(f'    ... and {len(items) - limit} more')
    return lines


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into.

    Attributes:
        path: the checkpoint file.
        missing: model keys the checkpoint lacks.
        unexpected: checkpoint keys the model does not have.
        mismatched: ``(key, checkpoint_shape, model_shape)`` that interpolation cannot fix.
    """

    def __init__(self, path: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                 mismatched: Sequence[Tuple[str, tuple, tuple]] = (), hint: str = '',
                 what: str = 'MixMAESwin backbone'):
        self.path = path
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        lines = [f'checkpoint {path} does not fit the {what}; nothing was loaded.']
        lines += _listing('missing keys', self.missing)
        lines += _listing('unexpected keys', self.unexpected)
        lines += _listing('shape mismatches (checkpoint vs model)', [
            f'{k}: {_fmt_shape(a)} vs {_fmt_shape(b)}' for k, a, b in self.mismatched])
        if hint:
            lines.append(hint)
        super().__init__('\n'.join(lines))


class CheckpointConversionError(ValueError):
    """A checkpoint cannot be converted; the message lists the offending keys."""


# =============================================================================
# reading
# =============================================================================
@contextlib.contextmanager
def _official_globals():
    """Allow ``argparse.Namespace`` (the official checkpoints' ``args``) while loading.

    ``Namespace`` is rebuilt from a plain attribute dict and runs no code; nothing
    else is added to torch's weights-only allowlist.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        yield


_URL_SCHEMES = ('http://', 'https://', 'file://')


def _download(url: str) -> str:
    """Download ``url`` into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) once."""
    from urllib.parse import urlparse
    from torch.hub import download_url_to_file, get_dir
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise CheckpointConversionError(f'{url} does not name a file')
    cache = os.path.join(get_dir(), 'checkpoints')
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, name)
    if not os.path.exists(target):
        download_url_to_file(url, target, progress=False)
    return target


def read_checkpoint(path: str, map_location='cpu'):
    """Load a checkpoint with ``torch.load(weights_only=True)`` and clear errors.

    Local files go through :func:`mmmixmae.compat.load_checkpoint_safely`
    (``FileNotFoundError``, ``UnsafeCheckpointError`` for a pickle that would
    run code, ``InvalidCheckpointError`` for a file that is not a checkpoint).
    ``http(s)://`` and ``file://`` URLs are downloaded to torch's hub cache first
    and then read the same way (mmengine's URL loader would call
    ``torch.hub.load_state_dict_from_url``, whose default is ``weights_only=False``).
    """
    from mmmixmae.compat import load_checkpoint_safely
    path = os.fspath(path)
    if '://' in path:
        if not path.startswith(_URL_SCHEMES):
            raise CheckpointConversionError(
                f'{path}: only local files and {", ".join(_URL_SCHEMES)} URLs are supported')
        path = _download(path)
    with _official_globals():
        return load_checkpoint_safely(path, map_location=map_location)


def find_state_dict(checkpoint, path: str = '<checkpoint>') -> Tuple[StateDict, str]:
    """Return ``(state_dict, format)``.

    ``format`` is ``'mmengine'`` (``checkpoint['state_dict']``), ``'official'``
    (``checkpoint['model']``, Sense-X/MixMIM ``main_*.py``) or ``'bare'`` (the
    file is a state dict).  Anything else raises :class:`CheckpointConversionError`.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointConversionError(
            f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    for key, fmt in (('state_dict', 'mmengine'), ('model', 'official')):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            state_dict, where = checkpoint[key], f"{path}['{key}']"
            break
    else:
        state_dict, fmt, where = checkpoint, 'bare', path
    not_tensors = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if not state_dict or not_tensors:
        shown = ', '.join(repr(k) for k in list(state_dict)[:12])
        raise CheckpointConversionError(
            f'{where} is not a state dict: '
            + (f'entries {not_tensors[:12]} are not tensors (top-level keys: {shown})'
               if not_tensors else 'it is empty'))
    return OrderedDict(state_dict), fmt


# =============================================================================
# architecture inference (used to build the target model of a conversion)
# =============================================================================
_BLOCK_KEY = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.')
_DEC_BLOCK_KEY = re.compile(r'decoder_blocks\.(\d+)\.')
_DENSE_NORM = re.compile(r'norm(\d+)\.(weight|bias)$')


def _need(sd: StateDict, key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointConversionError(f'cannot infer the {what}: key {key!r} is missing')
    return sd[key]


def infer_backbone_config(sd: StateDict) -> dict:
    """``MixMAESwin`` keyword arguments that reproduce the shapes of ``sd``.

    ``sd`` holds backbone keys without prefix (official names).  The image size
    comes from ``absolute_pos_embed`` (square grids), the windows from the
    relative-position tables, the heads from their columns.
    """
    proj = _need(sd, 'patch_embed.proj.weight', 'patch embedding')
    embed_dims, in_channels, patch_size = proj.shape[0], proj.shape[1], proj.shape[2]
    depth_of: Dict[int, int] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            depth_of[stage] = max(depth_of.get(stage, 0), block + 1)
    if not depth_of or sorted(depth_of) != list(range(len(depth_of))):
        raise CheckpointConversionError(
            f'cannot infer the stages: found blocks in stages {sorted(depth_of)}')
    stages = len(depth_of)
    depths = [depth_of[i] for i in range(stages)]
    num_heads, windows = [], []
    for i in range(stages):
        table = _need(sd, f'layers.{i}.blocks.0.attn.relative_position_bias_table',
                      f'heads and window of stage {i}')
        num_heads.append(int(table.shape[1]))
        try:
            windows.append(window_from_table_length(int(table.shape[0])))
        except ValueError as err:
            raise CheckpointConversionError(
                f'layers.{i}.blocks.0.attn.relative_position_bias_table: {err}') from None
    pos = _need(sd, 'absolute_pos_embed', 'image size')
    side = math.isqrt(int(pos.shape[1]))
    if pos.dim() != 3 or side * side != pos.shape[1]:
        raise CheckpointConversionError(
            f'absolute_pos_embed of shape {_fmt_shape(pos.shape)} is not a square token grid')
    fc1 = _need(sd, 'layers.0.blocks.0.mlp.fc1.weight', 'MLP ratio')
    out_indices = sorted({stages - 1} | {int(m.group(1)) for m in map(_DENSE_NORM.match, sd)
                                         if m})
    return dict(
        arch=dict(embed_dims=int(embed_dims), depths=depths, num_heads=num_heads),
        img_size=int(side * patch_size), patch_size=int(patch_size),
        in_channels=int(in_channels), window_size=windows,
        mlp_ratio=float(fc1.shape[0]) / float(embed_dims), out_indices=out_indices)


def infer_decoder_config(sd: StateDict) -> dict:
    """``MixMAEDecoder`` keyword arguments for decoder keys without prefix.

    The number of heads does not show in any shape; it is reported as the
    official default (16) when it divides the width, and does not affect the
    key/shape check.
    """
    embed = _need(sd, 'decoder_embed.weight', 'decoder width')
    embed_dims, in_channels = int(embed.shape[0]), int(embed.shape[1])
    depth = 1 + max((int(m.group(1)) for m in map(_DEC_BLOCK_KEY.match, sd) if m), default=-1)
    pos = _need(sd, 'decoder_pos_embed', 'decoder grid')
    side = math.isqrt(int(pos.shape[1]))
    if side * side != pos.shape[1]:
        raise CheckpointConversionError(
            f'decoder_pos_embed of shape {_fmt_shape(pos.shape)} is not a square token grid')
    pred = _need(sd, 'decoder_pred.weight', 'reconstruction size')
    stride = math.isqrt(int(pred.shape[0]) // 3)
    mlp_ratio = 4.
    if depth > 0:
        mlp_ratio = float(_need(sd, 'decoder_blocks.0.mlp.fc1.weight', 'decoder MLP ratio')
                          .shape[0]) / embed_dims
    return dict(in_channels=in_channels, embed_dims=embed_dims, depth=depth,
                num_heads=16 if embed_dims % 16 == 0 else 1, mlp_ratio=mlp_ratio,
                img_size=side * stride, encoder_stride=stride)


def _expected_shapes(kind: str, backbone_cfg: dict, decoder_cfg: Optional[dict] = None,
                     head_shapes: Optional[Dict[str, tuple]] = None) -> Dict[str, tuple]:
    """Keys and shapes of the target model (built on CPU, then thrown away)."""
    from ..backbones.mixmae_swin import MixMAESwin
    shapes = {f'backbone.{k}': tuple(v.shape)
              for k, v in MixMAESwin(**backbone_cfg).state_dict().items()}
    if kind == 'pretrain':
        from ..necks.mixmae_decoder import MixMAEDecoder
        shapes.update({f'neck.{k}': tuple(v.shape)
                       for k, v in MixMAEDecoder(**decoder_cfg).state_dict().items()})
    elif kind == 'classifier':
        shapes.update(head_shapes)
    return shapes


# =============================================================================
# patch merging channel order and sin-cos layouts
# =============================================================================
#: (dy, dx) of the four neighbours in our (official / timm) concatenation order
BLOCK_ORDER = ((0, 0), (1, 0), (0, 1), (1, 1))


def _unfold_index(channels4: int) -> torch.Tensor:
    """For every position of our layout, its position in mmcv's ``nn.Unfold`` layout."""
    if channels4 % 4:
        raise CheckpointConversionError(f'patch merging width {channels4} is not a multiple of 4')
    c = channels4 // 4
    return torch.tensor([ch * 4 + dy * 2 + dx for dy, dx in BLOCK_ORDER for ch in range(c)])


def unfold_to_block_major(t: torch.Tensor) -> torch.Tensor:
    """Reorder the last dimension (4C) from mmcv's Unfold order to ours."""
    return t[..., _unfold_index(t.shape[-1])].contiguous()


def block_major_to_unfold(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unfold_to_block_major`."""
    out = torch.empty_like(t)
    out[..., _unfold_index(t.shape[-1])] = t
    return out


def sincos_layout(table: torch.Tensor, atol: float = 1e-4) -> str:
    """Name the layout of a square ``[1, L, C]`` position table.

    ``'mae'`` (width first, official/ours), ``'mmpretrain'`` (height first),
    ``'zeros'`` or ``'other'`` (learned, interpolated or not a sin-cos table).
    """
    side = math.isqrt(int(table.shape[1]))
    if table.dim() != 3 or side * side != table.shape[1] or table.shape[-1] % 4:
        return 'other'
    if not table.any():
        return 'zeros'
    ref = build_2d_sincos_pos_embed(int(table.shape[-1]), side).to(table.dtype)
    if torch.allclose(table.float(), ref.float(), atol=atol):
        return 'mae'
    if torch.allclose(table.float(), swap_sincos_halves(ref).float(), atol=atol):
        return 'mmpretrain'
    return 'other'


# =============================================================================
# conversions
# =============================================================================
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
        lines += _listing('unknown keys', unknown)
        lines += _listing('keys mapped twice', clashes)
        if hint:
            lines.append(hint)
        raise CheckpointConversionError('\n'.join(lines))
    return out, groups


def _strip(sd: StateDict, prefix: str) -> StateDict:
    return OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))


def _check_against_target(converted: StateDict, kind: str, source: str) -> dict:
    """Build the target model from the converted shapes and compare key sets and shapes."""
    backbone = _strip(converted, 'backbone.')
    if not backbone:
        raise CheckpointConversionError(f'{source}: no backbone keys after conversion')
    backbone_cfg = infer_backbone_config(backbone)
    decoder_cfg = infer_decoder_config(_strip(converted, 'neck.')) if kind == 'pretrain' \
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
        raise CheckpointConversionError(str(err).replace('nothing was loaded', 'not converted'))
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


def format_conversion_summary(result: ConversionResult, src: str, dst: str, src_format: str,
                              extra_entries: Iterable[str] = ()) -> str:
    lines = [f'source      : {src} ({src_format} format)']
    extra = list(extra_entries)
    if extra:
        lines.append(f'not copied  : top-level entries {extra} (training state)')
    bb = result.meta['backbone']
    arch = bb['arch']
    lines.append(f"model       : {result.kind}; embed_dims {arch['embed_dims']}, depths "
                 f"{arch['depths']}, heads {arch['num_heads']}, img_size {bb['img_size']}, "
                 f"windows {bb['window_size']}")
    if 'decoder' in result.meta:
        d = result.meta['decoder']
        lines.append(f"decoder     : embed_dims {d['embed_dims']}, depth {d['depth']} "
                     '(heads are not stored in weights; set num_heads in the config, official 16)')
    if 'num_classes' in result.meta:
        lines.append(f"head        : {result.meta['num_classes']} classes")
    for name, layout in result.meta.get('pos_embed_layout', {}).items():
        note = {'mae': 'MAE / official sin-cos layout (width first)',
                'mmpretrain': "mmpretrain's sin-cos layout (height first), kept verbatim: "
                              'the weights were trained with it',
                'zeros': 'all zeros', 'other': 'not a plain sin-cos table, kept verbatim'}
        lines.append(f'{name}: {note[layout]}')
    total = sum(len(v) for v in result.groups.values())
    lines.append(f'source keys : {total}, each handled by one rule:')
    for name, keys in result.groups.items():
        lines.append(f'  {len(keys):5d}  {name}')
    lines.append(f'wrote       : {dst} ({len(result.state_dict)} tensors)')
    return '\n'.join(lines)


# =============================================================================
# init_cfg=Pretrained
# =============================================================================
#: keys an official / unprefixed checkpoint may carry for modules other than the encoder
_UNPREFIXED_OTHER = re.compile(r'(decoder_.+|mask_token|head\..+|neck\..+)')
_REL_INDEX = re.compile(r'(.+\.)?relative_position_index')
_MMPRETRAIN_NAMES = re.compile(r'(patch_embed\.projection|\.ln[12]\.|\.ffn\.layers\.)')


@dataclass
class LoadReport:
    """What :func:`load_pretrained_backbone` did (also printed as a table)."""
    path: str
    format: str
    prefix: str
    loaded: List[str] = field(default_factory=list)
    interpolated: List[str] = field(default_factory=list)
    dropped_other: List[str] = field(default_factory=list)
    dropped_rebuilt: List[str] = field(default_factory=list)
    newly_initialized: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)


def _may_be_missing(key: str) -> bool:
    """Backbone keys a checkpoint may legitimately lack: the LayerNorms ``norm{i}``
    of extra dense outputs (a pretraining / classification checkpoint has only the
    final ``norm``)."""
    return _DENSE_NORM.fullmatch(key) is not None


def _compact(keys: Sequence[str], limit: int = 6) -> str:
    if not keys:
        return '-'
    groups: Dict[str, int] = OrderedDict()
    for k in keys:
        head = k.split('.')[0]
        groups[head] = groups.get(head, 0) + 1
    if len(keys) <= limit:
        return ', '.join(keys)
    return ', '.join(f'{g}.* ({n})' if n > 1 else g for g, n in groups.items())


def _compact_changes(entries: Sequence[str]) -> str:
    """``key (a)->(b)`` entries, the relative-position tables grouped by shape change."""
    out, tables = [], OrderedDict()
    for entry in entries:
        key, change = entry.split(' ', 1)
        if key.endswith('relative_position_bias_table'):
            tables[change] = tables.get(change, 0) + 1
        else:
            out.append(entry)
    if tables:
        out.append(f'{sum(tables.values())} relative_position_bias_table: '
                   + ', '.join(f'{change} x{n}' for change, n in tables.items()))
    return '; '.join(out) or '-'


def _table(rows: Sequence[Tuple[str, int, str]]) -> str:
    head = ('status', 'count', 'keys')
    w0 = max(len(head[0]), *(len(r[0]) for r in rows))
    w1 = max(len(head[1]), *(len(str(r[1])) for r in rows))
    w2 = min(100, max(len(head[2]), *(len(r[2]) for r in rows)))
    sep = f'+-{"-" * w0}-+-{"-" * w1}-+-{"-" * w2}-+'
    out = [sep, f'| {head[0]:<{w0}} | {head[1]:>{w1}} | {head[2]:<{w2}} |', sep]
    for name, count, keys in rows:
        chunks = textwrap.wrap(keys, w2, break_on_hyphens=False) or ['']
        out.append(f'| {name:<{w0}} | {count:>{w1}} | {chunks[0]:<{w2}} |')
        out += [f'| {"":<{w0}} | {"":>{w1}} | {c:<{w2}} |' for c in chunks[1:]]
    out.append(sep)
    return '\n'.join(out)


def load_pretrained_backbone(backbone: nn.Module, init_cfg: dict) -> LoadReport:
    """Load ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``.

    * The checkpoint is read weights-only (:func:`read_checkpoint`); mmengine
      (``state_dict``), official (``model``) and bare state dicts are accepted.
    * With a ``prefix``, the keys under it are taken and every other key (decoder
      ``neck.*``, ``head.*``, ...) is dropped and counted.  If **no** key has the
      prefix, the checkpoint is read as an unprefixed (official or bare backbone)
      state dict: decoder keys (``decoder_*``, the decoder's ``mask_token``),
      ``head.*`` and ``neck.*`` are dropped and everything else must be a
      backbone key.
    * ``relative_position_index`` entries are dropped (rebuilt from the window);
      ``absolute_pos_embed`` and the relative-position tables are bicubically
      interpolated to this model's grid and windows (``MixMAESwin._adapt_checkpoint``).
    * Then the load is strict: a missing backbone key (except the dense
      ``norm{i}`` LayerNorms, reported as newly initialized), an unexpected key
      or a shape mismatch raises :class:`CheckpointMismatchError` listing all of
      them, before any weight is copied.

    Returns:
        :class:`LoadReport`; the same information is logged as a table.
    """
    known = {'type', 'checkpoint', 'prefix', 'map_location'}
    extra = sorted(set(init_cfg) - known)
    if extra:
        raise ValueError(f'init_cfg of type Pretrained takes {sorted(known)}; unknown {extra}')
    path = init_cfg.get('checkpoint')
    if not path:
        raise ValueError('init_cfg=Pretrained needs a checkpoint path; set '
                         'model.backbone.init_cfg.checkpoint (e.g. --cfg-options '
                         'model.backbone.init_cfg.checkpoint=PATH)')
    prefix = init_cfg.get('prefix') or ''
    checkpoint = read_checkpoint(path, init_cfg.get('map_location', 'cpu'))
    try:
        state_dict, fmt = find_state_dict(checkpoint, str(path))
    except CheckpointConversionError as err:
        raise CheckpointMismatchError(str(path), hint=str(err)) from None
    report = LoadReport(path=str(path), format=fmt, prefix=prefix)

    if prefix and any(k.startswith(prefix) for k in state_dict):
        selected = OrderedDict()
        for k, v in state_dict.items():
            if k.startswith(prefix):
                selected[k[len(prefix):]] = v
            else:
                report.dropped_other.append(k)
    else:
        selected = OrderedDict()
        for k, v in state_dict.items():
            if _UNPREFIXED_OTHER.fullmatch(k):
                report.dropped_other.append(k)
            else:
                selected[k] = v
    for k in [k for k in selected if _REL_INDEX.fullmatch(k)]:
        report.dropped_rebuilt.append(k)
        del selected[k]

    model_state = backbone.state_dict()
    before = {k: tuple(v.shape) for k, v in selected.items()}
    adapted = OrderedDict(selected)
    try:
        backbone._adapt_checkpoint(adapted, '', {}, True, [], [], [])
    except ValueError as err:
        raise CheckpointMismatchError(str(path), hint=f'cannot interpolate: {err}') from None
    report.interpolated = [f'{k} {_fmt_shape(before[k])}->{_fmt_shape(adapted[k].shape)}'
                           for k in adapted
                           if k in before and tuple(adapted[k].shape) != before[k]]

    missing = [k for k in model_state if k not in adapted]
    unexpected = [k for k in adapted if k not in model_state]
    mismatched = [(k, tuple(adapted[k].shape), tuple(model_state[k].shape)) for k in adapted
                  if k in model_state and adapted[k].shape != model_state[k].shape]
    report.newly_initialized = [k for k in missing if _may_be_missing(k)]
    missing = [k for k in missing if not _may_be_missing(k)]
    if missing or unexpected or mismatched:
        hint = ''
        if prefix and not any(k.startswith(prefix) for k in state_dict):
            hint = (f'(no key starts with prefix {prefix!r}; the keys were read as an '
                    'unprefixed backbone state dict)')
        elif not prefix and any(k.startswith('backbone.') for k in state_dict):
            hint = "the keys start with 'backbone.': set prefix='backbone.' in init_cfg"
        if any(_MMPRETRAIN_NAMES.search(k) for k in unexpected):
            hint += ('\nthis looks like an mmpretrain MixMIM checkpoint: convert it with '
                     'tools/model_converters/mmpretrain_mixmim_to_mmmixmae.py')
        raise CheckpointMismatchError(str(path), missing, unexpected, mismatched, hint.strip())

    result = backbone.load_state_dict(adapted, strict=False)
    if sorted(result.missing_keys) != sorted(report.newly_initialized) or \
            result.unexpected_keys:  # pragma: no cover - guarded by the checks above
        raise RuntimeError(f'load_state_dict disagreed with the pre-check: {result}')
    report.loaded = list(adapted)

    rows = [
        ('loaded', len(report.loaded), f'all {len(report.loaded)} backbone tensors'
         + (' (interpolated ones below)' if report.interpolated else '')),
        ('  of which interpolated', len(report.interpolated),
         _compact_changes(report.interpolated)),
        ('dropped: other modules', len(report.dropped_other), _compact(report.dropped_other)),
        ('dropped: rebuilt', len(report.dropped_rebuilt),
         '*.relative_position_index' if report.dropped_rebuilt else '-'),
        ('newly initialized', len(report.newly_initialized),
         ', '.join(report.newly_initialized) or '-'),
        ('missing', 0, '-'),
    ]
    where = f"{fmt} checkpoint, prefix {prefix!r}" if prefix else f'{fmt} checkpoint, no prefix'
    print_log(f'{type(backbone).__name__}: pretrained weights from {path} ({where})\n'
              + _table(rows), logger='current')
    return report


# =============================================================================
# command line (tools/model_converters/*.py)
# =============================================================================
def run_converter(convert: Callable[[StateDict, str], ConversionResult], description: str,
                  prog: str, argv: Optional[Sequence[str]] = None) -> int:
    """``PROG SRC DST``: read SRC weights-only, convert, write DST, print a summary.

    User errors (missing / unsafe / invalid file, unknown or missing keys) print
    ``PROG: error: ...`` on stderr and return 2, without a traceback.
    """
    import sys
    from mmmixmae.compat import CheckpointError
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument('src', help='source checkpoint (local path or URL)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args(argv)
    try:
        if os.path.exists(args.dst) and os.path.exists(args.src) and \
                os.path.samefile(args.src, args.dst):
            raise CheckpointConversionError('DST must not be the source file')
        checkpoint = read_checkpoint(args.src)
        state_dict, fmt = find_state_dict(checkpoint, args.src)
        extra = [k for k in checkpoint if fmt != 'bare' and k not in ('state_dict', 'model')]
        result = convert(state_dict, args.src)
        save_converted(result, args.dst, args.src)
    except (CheckpointError, CheckpointConversionError, OSError) as err:
        print(f'{prog}: error: {err}', file=sys.stderr)
        return 2
    print(format_conversion_summary(result, args.src, args.dst, fmt, extra))
    return 0
