"""Human-readable summaries of what a load or a conversion did.

:class:`LoadReport` records an ``init_cfg=Pretrained`` load key by key;
:func:`format_load_report` renders it as the table the loader logs;
:func:`format_conversion_summary` is what the converters print.
"""
from __future__ import annotations

import textwrap
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

__all__ = [
    'LoadReport', 'fmt_shape', 'listing', 'compact_keys', 'compact_changes', 'table',
    'format_load_report', 'format_conversion_summary'
]


def fmt_shape(shape: Iterable[int]) -> str:
    """``(2, 3)`` for a shape (a torch.Size prints as ``torch.Size([2, 3])``)."""
    return '(' + ', '.join(str(s) for s in shape) + ')'


def listing(title: str, items: Sequence[str], limit: int = 60) -> List[str]:
    """``title (n):`` followed by at most ``limit`` indented items."""
    if not items:
        return []
    lines = [f'{title} ({len(items)}):']
    lines += [f'    {item}' for item in items[:limit]]
    if len(items) > limit:
        lines.append(f'    ... and {len(items) - limit} more')
    return lines


@dataclass
class LoadReport:
    """What ``load_pretrained_backbone`` did (also logged as a table)."""
    path: str
    format: str
    prefix: str
    loaded: List[str] = field(default_factory=list)
    interpolated: List[str] = field(default_factory=list)
    dropped_other: List[str] = field(default_factory=list)
    dropped_rebuilt: List[str] = field(default_factory=list)
    newly_initialized: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)


def compact_keys(keys: Sequence[str], limit: int = 6) -> str:
    """The keys themselves when there are few, else ``head.* (count)`` per top-level name."""
    if not keys:
        return '-'
    groups: Dict[str, int] = OrderedDict()
    for k in keys:
        head = k.split('.')[0]
        groups[head] = groups.get(head, 0) + 1
    if len(keys) <= limit:
        return ', '.join(keys)
    return ', '.join(f'{g}.* ({n})' if n > 1 else g for g, n in groups.items())


def compact_changes(entries: Sequence[str]) -> str:
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


def table(rows: Sequence[Tuple[str, int, str]]) -> str:
    """A ``status | count | keys`` text table; long key lists wrap at 100 columns."""
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


def format_load_report(report: LoadReport, module_name: str) -> str:
    """The table :func:`~mmmixmae.checkpoint.pretrained.load_pretrained_backbone` logs."""
    rows = [
        ('loaded', len(report.loaded), f'all {len(report.loaded)} backbone tensors'
         + (' (interpolated ones below)' if report.interpolated else '')),
        ('  of which interpolated', len(report.interpolated),
         compact_changes(report.interpolated)),
        ('dropped: other modules', len(report.dropped_other), compact_keys(report.dropped_other)),
        ('dropped: rebuilt', len(report.dropped_rebuilt),
         '*.relative_position_index' if report.dropped_rebuilt else '-'),
        ('newly initialized', len(report.newly_initialized),
         ', '.join(report.newly_initialized) or '-'),
        ('missing', 0, '-'),
    ]
    where = (f'{report.format} checkpoint, prefix {report.prefix!r}' if report.prefix else
             f'{report.format} checkpoint, no prefix')
    return (f'{module_name}: pretrained weights from {report.path} ({where})\n' + table(rows))


def format_conversion_summary(result, src: str, dst: str, src_format: str,
                              extra_entries: Iterable[str] = ()) -> str:
    """What a converter prints: source format, inferred model, one line per rule.

    ``result`` is a :class:`~mmmixmae.checkpoint.convert.ConversionResult`.
    """
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
