"""Opt-in ``torch.compile`` of the token-wise parts of the blocks.

``compile=True`` (or a dict of ``torch.compile`` keyword arguments) on ``MixMAESwin`` and
``MixMAEDecoder`` compiles, per block, the part that works token by token and has the same
shapes every step: ``x + drop_path(mlp(norm2(x)))`` (LayerNorm, the two projections, GELU and
the residual, which inductor fuses).  The attention core stays eager: on the grouped path its
bucket shapes change with every mixing mask and would recompile each step.

The compiled functions are module-level and take the block as an argument, so blocks of equal
shapes share one compiled graph and ``copy.deepcopy`` of a model stays independent of its
original.  ``False`` (the default of every config; see docs/en/benchmarks.md for the
measurements behind it) changes nothing.
"""
from typing import Callable, Dict, Optional, Tuple, Union

import torch

__all__ = ['check_compile_cfg', 'compiled', 'set_compile']

_CACHE: Dict[Tuple[str, Tuple], Callable] = {}


def check_compile_cfg(cfg: Union[bool, dict, None]) -> Optional[dict]:
    """``False``/``None`` -> None, ``True`` -> ``{}``, a dict -> a copy of it.

    Raises:
        ValueError: anything else, or a dict ``torch.compile`` does not take (named).
    """
    if cfg is None or cfg is False:
        return None
    if cfg is True:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f'compile must be True, False or a dict of torch.compile arguments, '
                         f'got {cfg!r}')
    known = ('fullgraph', 'dynamic', 'backend', 'mode', 'options', 'disable')
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ValueError(f'compile: torch.compile takes no {unknown} (it takes {list(known)})')
    return dict(cfg)


def compiled(fn: Callable, cfg: Optional[dict]) -> Callable:
    """``fn`` itself when ``cfg`` is None, else its ``torch.compile`` (one per fn and cfg)."""
    if cfg is None:
        return fn
    key = (f'{fn.__module__}.{fn.__qualname__}', tuple(sorted((k, repr(v)) for k, v in cfg.items())))
    if key not in _CACHE:
        _CACHE[key] = torch.compile(fn, **cfg)
    return _CACHE[key]


def set_compile(model: torch.nn.Module, cfg: Union[bool, dict, None]) -> int:
    """Turn the compiled token-wise parts on (or off) in every block of ``model``.

    Returns:
        how many modules took the setting (0: ``model`` has no mmmixmae blocks).
    """
    cfg = check_compile_cfg(cfg)
    count = 0
    for module in model.modules():
        if hasattr(module, 'compile_cfg'):
            module.compile_cfg = cfg
            count += 1
    return count
