"""MixMAESwin: the hierarchical encoder of MixMAE (Swin/W14 without shifted windows).

One class serves pretraining (``forward(x, mask)`` mixes two images and keeps them apart
with masked self-attention), classification (pooled features) and dense tasks (multi-scale
``(B, C, H, W)`` maps with optional shifted windows and global attention blocks).

State-dict keys follow the official Sense-X/MixMIM code, so its checkpoints map one to one:
``patch_embed.{proj,norm}``, ``absolute_pos_embed``,
``layers.{i}.blocks.{j}.{norm1,attn.qkv,attn.proj,attn.relative_position_bias_table,norm2,mlp.fc1,mlp.fc2}``,
``layers.{i}.downsample.{norm,reduction}``, ``norm`` (final LayerNorm); dense outputs of
stages other than the last get their own ``norm{i}``.
"""
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.attn_path import check_attn_path
from ..utils.compile import check_compile_cfg
from ..utils.layer_ids import mixmim_layer_id
from ..utils.mixing import mix_tokens, stage_masks
from ..utils.pos_embed import build_2d_sincos_pos_embed, resize_pos_embed
from ..utils.rel_pos import resize_rel_pos_table, window_from_table_length
from .mixmae_blocks import MixMAEStage, PatchEmbed

FILL_MODES = ('mix', 'mask_token', 'zeros')
OUT_TYPES = ('raw', 'featmap', 'avg_featmap')


def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)



@MODELS.register_module()
class MixMAESwin(BaseModule):
    """The MixMAE encoder.

    Args:
        arch: ``'tiny' | 'small' | 'base' | 'large' | 'huge'`` or a dict with
            ``embed_dims``, ``depths``, ``num_heads``.
        img_size: image size the position embedding (and window clamping) is built for.
        patch_size: stem stride (4).
        window_size: per-stage window sizes; a window larger than its stage grid is
            clamped to the grid, and the clamped window must divide the grid.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.
        out_indices: stages whose outputs are returned (dense/classification use).
        out_type: ``'avg_featmap'`` (pooled ``[B, C]``), ``'featmap'`` (``[B, C, H, W]``)
            or ``'raw'`` (``[B, L, C]``).
        fill_mode: what fills the masked places in pretraining: ``'mix'`` (the partner image,
            MixMAE), ``'mask_token'`` (a learned token, SimMIM) or ``'zeros'``.
        attn_isolation: masked self-attention that keeps the two images apart.
        shift_window: Swin shifted windows in every second block (dense fine-tuning only).
        global_attn_indexes: indices (over all blocks) of blocks attending globally.
        with_cp: activation checkpointing per block.
        frozen_stages: freeze the stem (0) and stages ``< frozen_stages``; -1 freezes nothing.
        use_fused_attn: ``True``: ``scaled_dot_product_attention``; ``False``: the reference
            path; ``'auto'``: fused on accelerators and without gradients, reference for CPU
            training (faster there, see ``models/utils/attention.py``).  Dense path only.
        attn_path: how pretraining attention keeps the two images apart: ``'dense'`` (full
            window attention with an additive ``-inf`` mask), ``'grouped'`` (attention only
            within each image's group, ``models/utils/grouped_attention.py``) or ``'auto'``
            (see ``models/utils/attn_path.py``; logs its pick once).
        compile: ``torch.compile`` the blocks' token-wise parts (``models/utils/compile.py``).
    """
    arch_zoo: Dict[str, dict] = {
        'tiny': dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
        'small': dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
        'base': dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
        'large': dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48]),
        'huge': dict(embed_dims=352, depths=[2, 2, 18, 2], num_heads=[11, 22, 44, 88]),
    }

    @property
    def encoder_stride(self) -> int:
        """Pixels per token of the last stage: ``patch_size * 2 ** (num_stages - 1)`` (32)."""
        return self.patch_size * 2**(self.num_stages - 1)

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: Sequence[int] = (14, 14, 14, 7),
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (3, ),
                 out_type: str = 'avg_featmap',
                 fill_mode: str = 'mix',
                 attn_isolation: bool = True,
                 shift_window: bool = False,
                 global_attn_indexes: Sequence[int] = (),
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 use_fused_attn: Union[bool, str] = 'auto',
                 attn_path: str = 'auto',
                 compile: Union[bool, dict] = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.depths = list(arch['depths'])
        self.num_heads = list(arch['num_heads'])
        self.num_stages = len(self.depths)
        self.img_size = _pair(img_size)
        self.patch_size = patch_size
        if len(window_size) != self.num_stages:
            raise ValueError(f'window_size needs {self.num_stages} entries, got {list(window_size)}')
        if fill_mode not in FILL_MODES:
            raise ValueError(f'fill_mode must be one of {FILL_MODES}, got {fill_mode!r}')
        if out_type not in OUT_TYPES:
            raise ValueError(f'out_type must be one of {OUT_TYPES}, got {out_type!r}')
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        for i in out_indices:
            if not 0 <= i < self.num_stages:
                raise ValueError(f'out_indices entry {i} is outside 0..{self.num_stages - 1}')
        for s in self.img_size:
            if s % self.encoder_stride:
                raise ValueError(f'img_size {self.img_size} is not a multiple of the encoder '
                                 f'stride {self.encoder_stride}')
        self.out_indices = out_indices
        self.out_type = out_type
        self.fill_mode = fill_mode
        self.attn_isolation = attn_isolation
        self.shift_window = shift_window
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages {frozen_stages} is outside -1..{self.num_stages}')
        self.frozen_stages = frozen_stages
        self.use_fused_attn = use_fused_attn
        check_attn_path(attn_path)
        self.attn_path = attn_path
        compile_cfg = check_compile_cfg(compile)

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size)
        self.patch_grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.stage_grids = [(self.patch_grid[0] >> i, self.patch_grid[1] >> i)
                            for i in range(self.num_stages)]
        self.window_sizes = []
        for i, (win, grid) in enumerate(zip(window_size, self.stage_grids)):
            win = min(win, min(grid))
            if grid[0] % win or grid[1] % win:
                raise ValueError(f'window {win} of stage {i} does not divide its grid '
                                 f'{grid[0]}x{grid[1]} at img_size {self.img_size}')
            self.window_sizes.append((win, win))
        # fixed (not trained) 2-D sin-cos embedding, added after mixing
        self.absolute_pos_embed = nn.Parameter(
            build_2d_sincos_pos_embed(self.embed_dims, self.patch_grid), requires_grad=False)
        self.drop_after_pos = nn.Dropout(drop_rate)
        if fill_mode == 'mask_token':
            self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
            nn.init.trunc_normal_(self.mask_token, std=.02)

        total = sum(self.depths)
        dpr = torch.linspace(0, drop_path_rate, total).tolist()
        global_attn_indexes = set(global_attn_indexes)
        for g in global_attn_indexes:
            if not 0 <= g < total:
                raise ValueError(f'global_attn_indexes entry {g} is outside 0..{total - 1}')
        self.layers = nn.ModuleList()
        self.num_features = []
        for i, depth in enumerate(self.depths):
            dims = self.embed_dims * 2**i
            first = sum(self.depths[:i])
            self.layers.append(
                MixMAEStage(
                    dims, depth, self.num_heads[i], self.window_sizes[i], dpr[first:first + depth],
                    downsample=i < self.num_stages - 1, shift=shift_window,
                    global_blocks=[g - first for g in global_attn_indexes if first <= g < first + depth],
                    with_cp=with_cp, attn_path=attn_path, mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias, drop=drop_rate,
                    attn_drop=attn_drop_rate, use_fused_attn=use_fused_attn,
                    compile_cfg=compile_cfg))
            self.num_features.append(dims)
        self.norm = nn.LayerNorm(self.num_features[-1])
        for i in out_indices:
            if i != self.num_stages - 1:
                self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._init_params()
        self._register_load_state_dict_pre_hook(self._adapt_checkpoint)
        self._freeze_stages()

    # ------------------------------------------------------------------ construction
    def _parse_arch(self, arch) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown arch {arch!r}; choose from {sorted(self.arch_zoo)} '
                                 'or pass a dict')
            return self.arch_zoo[arch.lower()]
        missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
        if missing:
            raise ValueError(f'custom arch misses keys {sorted(missing)}')
        if len(arch['depths']) != len(arch['num_heads']):
            raise ValueError('arch depths and num_heads must have the same length')
        return arch

    def _init_params(self):
        """Official init: Xavier-uniform Linear with zero bias, LayerNorm 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def init_weights(self):
        # parameters are initialized at construction (official scheme); only a
        # Pretrained init_cfg does anything here.
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            from ...checkpoint.pretrained import load_pretrained_backbone
            load_pretrained_backbone(self, self.init_cfg)
            self._freeze_stages()

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed] + [self.layers[i] for i in range(self.frozen_stages)]
        frozen += [getattr(self, f'norm{i}') for i in range(self.frozen_stages)
                   if hasattr(self, f'norm{i}')]
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self._freeze_stages()
        return self

    # ------------------------------------------------------------------ checkpoints
    def adapt_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """A copy of ``state_dict`` (this backbone's keys, no prefix) fitted to this model.

        ``absolute_pos_embed`` is interpolated bicubically to the patch grid, every
        ``relative_position_bias_table`` to its block's window, and
        ``relative_position_index`` entries (rebuilt from the window size) are dropped.
        Used by the ``load_state_dict`` pre-hook and by
        :func:`mmmixmae.checkpoint.pretrained.load_pretrained_backbone` alike.

        Raises:
            ValueError: a position table whose token count is not a square grid.
        """
        out = OrderedDict()
        for name, src in state_dict.items():
            if name.endswith('relative_position_index'):
                continue
            if name == 'absolute_pos_embed' and src.dim() == 3 and \
                    src.shape != self.absolute_pos_embed.shape:
                side = math.isqrt(src.shape[1])
                if side * side != src.shape[1]:
                    raise ValueError(f'{name}: {src.shape[1]} tokens is not a square grid')
                src = resize_pos_embed(src, (side, side), self.patch_grid)
            elif name.endswith('relative_position_bias_table'):
                owner = name.rsplit('.', 1)[0]
                module = self.get_submodule(owner) if self._has_submodule(owner) else None
                if module is not None and src.dim() == 2 and src.shape != \
                        module.relative_position_bias_table.shape \
                        and src.shape[1] == module.relative_position_bias_table.shape[1]:
                    src_win = window_from_table_length(src.shape[0])
                    src = resize_rel_pos_table(src, (src_win, src_win), module.window_size)
            out[name] = src
        return out

    def _adapt_checkpoint(self, state_dict, prefix, *args, **kwargs):
        """``load_state_dict`` pre-hook: :meth:`adapt_state_dict` on the keys under ``prefix``."""
        own = [k for k in state_dict if k.startswith(prefix)]
        adapted = self.adapt_state_dict(OrderedDict((k[len(prefix):], state_dict[k]) for k in own))
        for key in own:
            del state_dict[key]
        for name, value in adapted.items():
            state_dict[prefix + name] = value

    def _has_submodule(self, name: str) -> bool:
        try:
            self.get_submodule(name)
            return True
        except AttributeError:
            return False

    # ------------------------------------------------------------------ forward
    def check_pretrain_input(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """Refuse sizes the mixing scheme cannot handle, before any compute."""
        if self.shift_window:
            raise ValueError('MixMAESwin: shift_window=True cannot take a pretraining mask: '
                             'the shifted-window pattern would replace the isolation of the '
                             'two mixed images (shifted windows are for dense fine-tuning)')
        h, w = x.shape[-2:]
        stride = self.encoder_stride
        if h % stride or w % stride:
            raise ValueError(f'pretraining needs image sizes that are multiples of {stride}, '
                             f'got {h}x{w}')
        grid = (h // stride, w // stride)
        if mask is not None and tuple(mask.shape) != (1, 1) + grid:
            raise ValueError(f'mixing mask must have shape (1, 1, {grid[0]}, {grid[1]}) for '
                             f'{h}x{w} images, got {tuple(mask.shape)}')
        for i in range(self.num_stages):
            gh, gw = h // (self.patch_size << i), w // (self.patch_size << i)
            win = self.window_sizes[i]
            if gh % win[0] or gw % win[1]:
                raise ValueError(f'window {win[0]}x{win[1]} of stage {i} does not divide its grid '
                                 f'{gh}x{gw} for {h}x{w} images')

    def pos_embed_for(self, hw: Tuple[int, int]) -> torch.Tensor:
        return resize_pos_embed(self.absolute_pos_embed, self.patch_grid, hw)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """Dispatch: :meth:`forward_mixed` with a ``mask``, :meth:`forward_features` without.

        Args:
            x: ``[B, 3, H, W]``.
            mask: pretraining only: ``[1, 1, H/32, W/32]`` 0/1 mixing mask.

        Returns:
            with ``mask``: ``(latent [B, H/32*W/32, C], mask)`` (mmpretrain's convention for
            masked-image-modelling backbones); without: a tuple with one entry per
            ``out_indices`` formatted by ``out_type``.
        """
        if mask is not None:
            return self.forward_mixed(x, mask)
        return self.forward_features(x)

    def _embed(self, x: torch.Tensor, first_mask: Optional[torch.Tensor] = None):
        """Patch embedding, mixing / filling (with ``first_mask [1, L, 1]``), position."""
        x, hw = self.patch_embed(x)
        if first_mask is not None:
            if self.fill_mode == 'mix':
                x = mix_tokens(x, first_mask)
            elif self.fill_mode == 'mask_token':
                x = x * (1. - first_mask) + self.mask_token.to(x.dtype) * first_mask
            else:
                x = x * (1. - first_mask)
        return self.drop_after_pos(x + self.pos_embed_for(hw).to(x.dtype)), hw

    def forward_mixed(self, x: torch.Tensor,
                      mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pretraining path: mix the batch with ``mask`` and encode the two images apart.

        Args:
            x: ``[B, 3, H, W]``, H and W multiples of :attr:`encoder_stride`.
            mask: ``[1, 1, H/32, W/32]``, 1 where sample i takes sample ``B-1-i``'s cell.

        Returns:
            ``(latent [B, H/32*W/32, C_last] after the final norm, mask in x's dtype)``.
        """
        self.check_pretrain_input(x, mask)
        mask = mask.to(dtype=x.dtype)
        h, w = x.shape[-2:]
        grids = [(h // (self.patch_size << i), w // (self.patch_size << i))
                 for i in range(self.num_stages)]
        masks = stage_masks(mask, grids)
        x, hw = self._embed(x, masks[0])
        for i, stage in enumerate(self.layers):
            out, _, x, hw = stage(x, hw, masks[i] if self.attn_isolation else None)
        return self.norm(out), mask

    def forward_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Feature path (classification, dense tasks): one output per ``out_indices``.

        Args:
            x: ``[B, 3, H, W]``, at least one :attr:`encoder_stride` cell.

        Returns:
            ``raw`` ``[B, L_i, C_i]``, ``featmap`` ``[B, C_i, H_i, W_i]`` or ``avg_featmap``
            ``[B, C_i]`` per selected stage.
        """
        if min(x.shape[-2:]) < self.encoder_stride:
            raise ValueError(f'input {x.shape[-2]}x{x.shape[-1]} is smaller than one '
                             f'{self.encoder_stride}-pixel cell')
        x, hw = self._embed(x)
        outs = []
        for i, stage in enumerate(self.layers):
            out, out_hw, x, hw = stage(x, hw, None)
            if i in self.out_indices:
                outs.append(self._format(out, out_hw, i))
        return tuple(outs)

    def _format(self, x: torch.Tensor, hw: Tuple[int, int], stage: int) -> torch.Tensor:
        norm = self.norm if stage == self.num_stages - 1 else getattr(self, f'norm{stage}')
        x = norm(x)
        if self.out_type == 'raw':
            return x
        if self.out_type == 'avg_featmap':
            return x.mean(dim=1)
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw).contiguous()

    # ------------------------------------------------------------------ layer decay
    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Official MixMIM layer ids for layer-wise lr decay
        (:func:`~mmmixmae.models.utils.layer_ids.mixmim_layer_id`)."""
        return mixmim_layer_id(param_name, self.depths, prefix)
