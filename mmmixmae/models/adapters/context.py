"""The mixing context shared by the isolation-aware layers of one adapted backbone.

During a pretraining call the adapter stores the batch-shared ``[1, 1, H/32, W/32]`` mixing
mask here; every swapped layer reads the mask at its own resolution from it.  Outside a
pretraining call the mask is ``None`` and every swapped layer runs its upstream forward
unchanged.
"""
from typing import Dict, Optional, Tuple

import torch

MIX_GRID = 32  # pixels per mixing cell


class MixingContext:
    """Holds the current mixing mask and serves it at any feature resolution."""

    def __init__(self) -> None:
        self.mask: Optional[torch.Tensor] = None
        self._cache: Dict[Tuple[int, int], torch.Tensor] = {}

    @property
    def active(self) -> bool:
        return self.mask is not None

    def set(self, mask: Optional[torch.Tensor]) -> None:
        """``mask``: ``[1, 1, h, w]`` 0/1 (1 = the cell comes from the partner) or None."""
        self.mask = None if mask is None else mask.detach().bool()
        self._cache = {}

    def cells_per_side(self, hw: Tuple[int, int], where: str) -> Tuple[int, int]:
        """Feature positions per mixing cell along H and W at a ``hw`` feature map.

        Raises naming ``where`` when the map is not a whole number of cells (a stride
        that does not divide 32)."""
        gh, gw = self.mask.shape[-2:]
        h, w = hw
        if h % gh or w % gw:
            raise ValueError(
                f'{where}: a {h}x{w} feature map is not a whole number of 32-pixel mixing '
                f'cells ({gh}x{gw} cells): its stride {32 * gh / h:g} does not divide '
                f'{MIX_GRID}')
        return h // gh, w // gw

    def mask_at(self, hw: Tuple[int, int], where: str = 'layer') -> torch.Tensor:
        """Boolean ``[1, 1, h, w]`` mask at a feature resolution (nearest upsampling)."""
        hw = (int(hw[0]), int(hw[1]))
        if hw not in self._cache:
            ch, cw = self.cells_per_side(hw, where)
            self._cache[hw] = self.mask.repeat_interleave(ch, dim=2).repeat_interleave(cw, dim=3)
        return self._cache[hw]


def image_labels(mask: torch.Tensor, padded_hw: Tuple[int, int]) -> torch.Tensor:
    """``[1, 1, h, w]`` bool mask -> ``[Hp, Wp]`` long labels on a bottom/right padded grid.

    0: the sample's own image, 1: its partner, 2: padding (carries no image content).
    """
    h, w = mask.shape[-2:]
    labels = torch.full(padded_hw, 2, dtype=torch.long, device=mask.device)
    labels[:h, :w] = mask[0, 0].long()
    return labels


def isolation_bias(q_labels: torch.Tensor, k_labels: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias ``[..., Nq, Nk]``: ``-inf`` where a real query and a real key
    belong to different images, 0 elsewhere (padding is visible to and from both)."""
    q = q_labels.unsqueeze(-1)
    k = k_labels.unsqueeze(-2)
    blocked = (q != k) & (q != 2) & (k != 2)
    return torch.zeros(blocked.shape, dtype=dtype, device=q_labels.device).masked_fill(
        blocked, float('-inf'))
