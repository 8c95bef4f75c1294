"""Official MixMIM layer ids (``util/lr_decay.py``) for layer-wise learning-rate decay."""
from typing import Sequence, Tuple

__all__ = ['mixmim_layer_id']


def mixmim_layer_id(param_name: str, depths: Sequence[int],
                    prefix: str = '') -> Tuple[int, int]:
    """``(layer_id, num_layers)`` of one parameter, in mmpretrain's ``get_layer_depth`` form.

    With ``N = sum(depths) + 1`` the official scale of id ``k`` is ``rate^(N - k)``;
    mmpretrain's constructor uses ``rate^(num_layers - layer_id - 1)``, so
    ``num_layers = N + 1``.  Stem and position embedding: 0; block j of stage i:
    ``sum(depths[:i]) + j + 1``; downsample of stage i: ``sum(depths[:i+1]) + 1``;
    everything else (final norm, dense norms, mask token) and parameters outside the
    backbone (names without ``prefix``, e.g. the classifier head): ``sum(depths)``.
    """
    num_layers = sum(depths) + 2
    if not param_name.startswith(prefix):
        # outside the backbone (the classifier head): the official id sum(depths),
        # i.e. scale rate^1, like the final norm
        return sum(depths), num_layers
    name = param_name[len(prefix):]
    if name in ('absolute_pos_embed', 'cls_token', 'pos_embed') or name.startswith('patch_embed'):
        return 0, num_layers
    if name.startswith('layers.'):
        parts = name.split('.')
        stage = int(parts[1])
        if parts[2] == 'downsample':
            return sum(depths[:stage + 1]) + 1, num_layers
        return sum(depths[:stage]) + int(parts[3]) + 1, num_layers
    return sum(depths), num_layers
