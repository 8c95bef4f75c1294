"""The only changes a dry run makes to a config so that it runs in one CPU process.

:func:`adapt_for_cpu` edits a loaded ``mmengine.Config`` in place and returns one line per
change: batch size, worker count, persistent workers, pin memory, fp16 -> bf16 autocast,
SyncBN -> BN, the data root, the pretrained file (none, or ``--checkpoint``), and the
length of the run (N training iterations, then one validation pass).
"""
from typing import Any, Callable, List, Optional

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _walk(node: Any, path: str, visit: Callable[[dict, str], None]) -> None:
    if isinstance(node, dict):
        visit(node, path)
        for k, v in list(node.items()):
            _walk(v, f'{path}.{k}' if path else str(k), visit)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _walk(v, f'{path}[{i}]', visit)


def _set(node: dict, key: str, value: Any, where: str, log: List[str]) -> None:
    old = node.get(key, '<unset>')
    if old != value:
        node[key] = value
        log.append(f'{where}.{key}: {old!r} -> {value!r}')


def adapt_loaders(cfg, batch_size: int, log: List[str]) -> None:
    for name in LOADERS:
        loader = cfg.get(name)
        if not loader:
            continue
        bs = batch_size if name == 'train_dataloader' else 1
        _set(loader, 'batch_size', bs, name, log)
        _set(loader, 'num_workers', 0, name, log)
        _set(loader, 'persistent_workers', False, name, log)
        if loader.get('pin_memory'):
            _set(loader, 'pin_memory', False, name, log)


def adapt_amp(cfg, log: List[str]) -> None:
    """CPU autocast: bfloat16 instead of the GPU default float16."""
    ow = cfg.get('optim_wrapper')
    if ow and ow.get('type') == 'AmpOptimWrapper':
        old = ow.get('dtype')
        if old not in ('bfloat16',):
            ow['dtype'] = 'bfloat16'
            log.append(f'optim_wrapper.dtype: {old or "float16 (AmpOptimWrapper default)"!r}'
                       " -> 'bfloat16' (CPU autocast)")


def adapt_norms(cfg, log: List[str]) -> None:
    """SyncBN needs a process group: plain BN in one process."""

    def visit(node: dict, path: str) -> None:
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            log.append(f'{path}.type: {node["type"]!r} -> \'BN\'')
            node['type'] = 'BN'

    _walk(cfg.get('model'), 'model', visit)


def adapt_data_root(cfg, data_root: str, log: List[str]) -> None:
    """Replace the config's ``data_root`` prefix in every dataset and evaluator field."""
    new = data_root.rstrip('/') + '/'
    olds = set()
    for name in LOADERS:
        ds = (cfg.get(name) or {}).get('dataset')
        if ds and ds.get('data_root'):
            olds.add(ds['data_root'])
    if not olds:
        raise ValueError('--data-root given, but no dataset of the config has a data_root')

    def visit(node: dict, path: str) -> None:
        for k, v in list(node.items()):
            if not isinstance(v, str):
                continue
            for old in olds:
                if v == old or v.startswith(old.rstrip('/') + '/'):
                    rest = v[len(old.rstrip('/')):].lstrip('/')
                    node[k] = new + rest if rest else (new if v.endswith('/') else
                                                       new.rstrip('/'))
                    log.append(f'{path}.{k}: {v!r} -> {node[k]!r}')
                    break

    for name in LOADERS + ('val_evaluator', 'test_evaluator'):
        if cfg.get(name):
            _walk(cfg[name], name, visit)
    if 'data_root' in cfg:
        cfg.data_root = new


def adapt_pretrained(cfg, checkpoint: Optional[str], log: List[str]) -> None:
    """``init_cfg=Pretrained`` anywhere in the model: removed, or pointed at ``checkpoint``."""

    def visit(node: dict, path: str) -> None:
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            if checkpoint:
                log.append(f'{path}.init_cfg.checkpoint: {init.get("checkpoint")!r} -> '
                           f'{checkpoint!r}')
                init['checkpoint'] = checkpoint
            else:
                log.append(f'{path}.init_cfg: Pretrained({init.get("checkpoint")!r}) -> None '
                           '(random init; pass --checkpoint to load one)')
                node['init_cfg'] = None

    _walk(cfg.get('model'), 'model', visit)
    if cfg.get('load_from'):
        log.append(f'load_from: {cfg.load_from!r} -> None')
        cfg.load_from = None
    if cfg.get('resume'):
        log.append('resume: True -> False')
        cfg.resume = False


def adapt_length(cfg, iters: int, batch_size: int, val_samples: Optional[int],
                 log: List[str]) -> None:
    """N training iterations then one validation pass, with the config's own loop type.

    Epoch loops: the training set is cut to ``N x batch`` samples (``dataset.indices``) and
    run for one epoch; iteration loops run ``N`` iterations.  Validation happens once, at
    the end.  ``val_samples`` cuts the validation set the same way."""
    tc = cfg.train_cfg
    ds = cfg.train_dataloader.dataset
    if 'max_epochs' in tc or 'Epoch' in str(tc.get('type', '')):
        _set(ds, 'indices', iters * batch_size, 'train_dataloader.dataset', log)
        _set(tc, 'max_epochs', 1, 'train_cfg', log)
        if cfg.get('val_dataloader'):
            _set(tc, 'val_interval', 1, 'train_cfg', log)
            if tc.get('val_begin', 1) != 1:
                _set(tc, 'val_begin', 1, 'train_cfg', log)
    else:
        _set(tc, 'max_iters', iters, 'train_cfg', log)
        if cfg.get('val_dataloader'):
            _set(tc, 'val_interval', iters, 'train_cfg', log)
    if val_samples and cfg.get('val_dataloader'):
        _set(cfg.val_dataloader.dataset, 'indices', val_samples, 'val_dataloader.dataset', log)


#: transforms whose size fields ``--image-scale`` multiplies (detection / segmentation)
RESIZE_TYPES = ('Resize', 'RandomResize', 'RandomChoiceResize', 'RandomCrop')
SIZE_KEYS = ('scale', 'scales', 'crop_size')
IMAGE_LEVEL_TYPES = ('RandomResizedCrop', 'CenterCrop', 'ResizeEdge')


def _scaled(value: Any, factor: float, multiple: int) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v, factor, multiple) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(multiple, int(round(value * factor / multiple)) * multiple)
    return value


def adapt_image_scale(cfg, factor: float, log: List[str]) -> None:
    """Opt-in (``--image-scale F``): multiply the sizes of the detection / segmentation
    resize and crop transforms (and the segmentor's pad size) by ``F``.  Image-level
    pipelines (pretraining, classification) are refused: their crop is fixed by
    ``model.backbone.img_size``."""
    if not 0 < factor <= 1:
        raise ValueError(f'--image-scale {factor} must be in (0, 1]')

    def visit(node: dict, path: str) -> None:
        if node.get('type') in IMAGE_LEVEL_TYPES:
            raise ValueError(f'--image-scale: {path} is {node["type"]}, whose size is fixed by '
                             'model.backbone.img_size; use it for detection / segmentation')
        if node.get('type') in RESIZE_TYPES:
            for key in SIZE_KEYS:
                if key in node:
                    old = node[key]
                    node[key] = _scaled(old, factor, 32 if key == 'crop_size' else 1)
                    log.append(f'{path}.{key}: {old!r} -> {node[key]!r}')

    for name in LOADERS:
        if cfg.get(name):
            _walk(cfg[name].get('dataset'), f'{name}.dataset', visit)
    pre = (cfg.get('model') or {}).get('data_preprocessor') or {}
    if pre.get('size'):
        old = pre['size']
        pre['size'] = _scaled(old, factor, 32)
        log.append(f'model.data_preprocessor.size: {old!r} -> {pre["size"]!r}')


def adapt_for_cpu(cfg, *, batch_size: int, iters: int, data_root: Optional[str],
                  checkpoint: Optional[str], val_samples: Optional[int] = None,
                  image_scale: Optional[float] = None) -> List[str]:
    """Apply every change in place; returns the list of changes, one line each."""
    if iters < 1 or batch_size < 1:
        raise ValueError(f'--iters {iters} and --batch-size {batch_size} must be >= 1')
    log: List[str] = []
    if image_scale is not None:
        adapt_image_scale(cfg, image_scale, log)
    if data_root:
        adapt_data_root(cfg, data_root, log)
    adapt_loaders(cfg, batch_size, log)
    adapt_amp(cfg, log)
    adapt_norms(cfg, log)
    adapt_pretrained(cfg, checkpoint, log)
    adapt_length(cfg, iters, batch_size, val_samples, log)
    return log
