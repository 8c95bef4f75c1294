"""Model loading and image helpers shared by the user-facing tools.

Every tool checks its inputs before any heavy work and reports a user error as one line,
``<tool>: error: <what is wrong>``, with exit status 2 (no traceback): user errors are
:class:`~mmmixmae.utils.errors.UserError` (``ToolError`` is the same class), and
:func:`~mmmixmae.utils.errors.run_tool` turns them into that line.
"""
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from mmmixmae.utils.config import check_file
from mmmixmae.utils.config import load_config as load_tool_config
from mmmixmae.utils.errors import UserError, run_tool

__all__ = [
    'ToolError', 'run_tool', 'check_file', 'load_tool_config', 'import_scope', 'build_model',
    'extract_state_dict', 'load_model_weights', 'load_backbone_weights', 'read_rgb',
    'resize_center_crop', 'normalization_of'
]

#: the user-error type under the name the tools use
ToolError = UserError


def import_scope(cfg) -> None:
    """Import what the config asks for and set its default scope (as the Runner does)."""
    import mmmixmae  # noqa: F401  (registers modules, applies compat)
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings
    custom = cfg.get('custom_imports')
    if custom:
        import_modules_from_strings(**custom)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))


def build_model(cfg, path: str = 'config'):
    """Build ``cfg.model`` in the config's scope, in eval mode on CPU."""
    import_scope(cfg)
    from mmengine.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    try:
        model = MODELS.build(model_cfg)
    except Exception as err:
        raise ToolError(f'cannot build the model of {path}: {type(err).__name__}: '
                        f'{str(err).splitlines()[0] if str(err) else ""}') from None
    return model.eval()


def extract_state_dict(checkpoint, path: str) -> Dict:
    """The tensors of a Runner (``state_dict``), official (``model``), ``module`` or bare
    checkpoint, ``module.`` prefixes (DDP) dropped
    (:func:`mmmixmae.checkpoint.find_state_dict` + :func:`mmmixmae.checkpoint.revise_keys`)."""
    from mmmixmae.checkpoint import find_state_dict, revise_keys
    return revise_keys(find_state_dict(checkpoint, path)[0])


def _read_checkpoint(path: str) -> Dict:
    from mmmixmae.checkpoint import load_checkpoint_safely
    full = check_file(path, 'checkpoint file')
    return extract_state_dict(load_checkpoint_safely(full, map_location='cpu'), path)


def _persistent_keys(module) -> List[str]:
    return list(module.state_dict().keys())


def _summ(keys: Iterable[str], n: int = 6) -> str:
    keys = sorted(keys)
    head = ', '.join(keys[:n])
    return head + (f' ... ({len(keys)} in all)' if len(keys) > n else '')


def load_model_weights(model, path: str, require: Sequence[str] = ()) -> Tuple[List[str], List[str]]:
    """Load a whole-model checkpoint; every parameter and buffer of ``model`` must be in it.

    Args:
        require: prefixes (e.g. ``('backbone.', 'neck.')``) checked first with a message that
            says which part of the model the checkpoint lacks.

    Returns:
        ``(loaded keys, ignored checkpoint keys)``.
    """
    state = _read_checkpoint(path)
    wanted = _persistent_keys(model)
    for prefix in require:
        if not any(k.startswith(prefix) for k in state):
            have = sorted({k.split('.')[0] for k in state})
            raise ToolError(f'checkpoint {path} has no "{prefix}*" weights (its top-level keys: '
                            f'{", ".join(have[:8])}); it does not match the config\'s model')
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ToolError(f'checkpoint {path} does not match the config\'s model: it lacks '
                        f'{_summ(missing)}')
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = [ln.strip() for ln in str(err).splitlines() if 'size mismatch' in ln][:3]
        raise ToolError(f'checkpoint {path} does not match the config\'s model: '
                        f'{"; ".join(first) or str(err).splitlines()[0]}') from None
    if result.missing_keys:
        raise ToolError(f'checkpoint {path} does not match the config\'s model: it lacks '
                        f'{_summ(result.missing_keys)}')
    return [k for k in wanted], list(result.unexpected_keys)


def load_backbone_weights(backbone, path: str) -> Tuple[List[str], List[str]]:
    """Load the backbone from a pretraining/classification Runner checkpoint (``backbone.*``),
    an official MixMIM checkpoint or a bare backbone state dict, with the project's strict
    loader (:func:`mmmixmae.checkpoint.load_pretrained_backbone`: every backbone
    weight must be present and fit; decoder and head weights are dropped; position tables are
    interpolated to this backbone's grid and windows).

    Returns:
        ``(loaded keys, dropped checkpoint keys)``.
    """
    from mmmixmae.checkpoint import load_pretrained_backbone
    full = check_file(path, 'checkpoint file')
    report = load_pretrained_backbone(
        backbone, dict(type='Pretrained', checkpoint=full, prefix='backbone.'))
    return list(report.loaded), list(report.dropped_other) + list(report.dropped_rebuilt)


def read_rgb(path: str) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W, 3]`` RGB; :class:`ToolError` names a file that is
    missing or cannot be decoded."""
    from PIL import Image, UnidentifiedImageError
    full = check_file(path, 'image file')
    try:
        with Image.open(full) as im:
            im.load()
            return np.asarray(im.convert('RGB')).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ToolError(f'cannot decode image {path}: {err}') from None


def resize_center_crop(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize (bicubic) so the image covers ``size = (H, W)``, then crop the centre."""
    from PIL import Image
    th, tw = size
    h, w = img.shape[:2]
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    out = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(out[y0:y0 + th, x0:x0 + tw])


def normalization_of(cfg) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` (RGB order) of the config's data preprocessor; ImageNet's otherwise."""
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    mean = pre.get('mean', [123.675, 116.28, 103.53])
    std = pre.get('std', [58.395, 57.12, 57.375])
    mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    if mean.shape != (3, ) or std.shape != (3, ):
        raise ToolError(f'data_preprocessor mean/std must have 3 entries, got {mean} / {std}')
    return mean, std
