"""Run the shell commands of the user docs, against the real files, and report each one.

    python tools/misc/run_doc_commands.py [--list] [--only TEXT ...] [--data DIR] [--keep]
        [--json OUT]

Every command of the fenced ``bash`` / ``shell`` / ``sh`` blocks of ``README.md``,
``docs/en/*.md`` and ``configs/*/README.md`` is extracted (continuation lines joined, heredocs
such as ``python - <<'PY' ... PY`` kept with their body, comments dropped, ``VAR=value``
prefixes kept) and looked up in :data:`TABLE`, the reviewed list of what runs here and what
does not, and why.  A command that no entry of the table matches, or an entry that matches no
command, stops the script before anything runs (exit status 2), naming the file and line: a
command added to the docs must be added to the table, as runnable or with its reason.

Runnable commands run in document order, each with ``bash -c`` in one scratch copy of the
repository (its tracked and untracked-but-not-ignored files, ``.venv`` linked to the running
interpreter's environment), so that a later command finds what an earlier one wrote (the toy
pretraining, then the detector that starts from its checkpoint) and nothing is left in the
repository.  The commands see ``MMMIXMAE_DATA`` (the sample data, ``--data``), the copy first
on ``PYTHONPATH``, and no GPU (``CUDA_VISIBLE_DEVICES=''``).  A command that repeats one
already run (``make demo`` is in three places) is not run again.  Where the table changes a
command (an absolute ``/tmp`` folder moved into the scratch folder, a shorter run), the report
says so and why.  A command that does not run here still has its ``--options`` looked up in
the ``--help`` of the ``tools/`` script it calls (``dist_train.sh`` passes them to
``train.py``): an option the tool does not have fails the run.

The report gives, per command, ``file:line``, the status (``passed``, ``FAILED`` with the last
lines of its output, stdout and stderr together, ``not run`` with the reason, ``same as`` an
earlier one) and its seconds.  Exit status: 0 when every runnable command passed and every
option exists, 1 otherwise, 2 for a docs / table mismatch or a bad argument.

``--list`` prints the classification without running anything (a second).  ``--only TEXT``
runs only the commands whose ``file:line`` or text contains TEXT (the commands they depend
on are not added: name them too).  ``--keep`` keeps the scratch folder and prints its path.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
#: the documents whose commands are run (relative to the repository root, in this order)
DOC_PATTERNS = ('README.md', 'docs/en/*.md', 'configs/*/README.md')
#: fence languages whose lines are shell commands
SHELL_LANGS = frozenset({'bash', 'shell', 'sh'})
#: seconds a runnable command may take unless its table entry says otherwise
DEFAULT_TIMEOUT = 600
#: lines of a failed command's output shown in the report
TAIL_LINES = 15

FENCE_RE = re.compile(r'^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)')
HEREDOC_RE = re.compile(r'<<(?P<dash>-?)[ \t]*(?P<q>[\'"]?)(?P<word>[A-Za-z_]\w*)(?P=q)')
ASSIGN_RE = re.compile(r'[A-Za-z_]\w*=')
TOOL_RE = re.compile(r'(?<![\w/.-])(tools/[\w/.-]+\.(?:py|sh))')
OPTION_RE = re.compile(r'(?<![\w-])(--[A-Za-z][\w-]*)')
#: launch scripts, and the tool whose options they pass on
LAUNCHED = {'tools/dist_train.sh': 'tools/train.py', 'tools/slurm_train.sh': 'tools/train.py',
            'tools/dist_test.sh': 'tools/test.py', 'tools/slurm_test.sh': 'tools/test.py'}


class DocsTableError(Exception):
    """The docs and :data:`TABLE` disagree (or a code block is malformed); the message names
    every ``file:line`` concerned."""


# --------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class DocCommand:
    """One shell command of a document.

    ``text`` is the command as one line (continuations joined, comments dropped, whitespace
    collapsed; for a heredoc, the line that opens it): what the table matches and the report
    shows.  ``source`` is the command's lines as the document has them (continuations,
    comments, a heredoc's body and terminator): what ``bash -c`` runs.  ``heredoc`` is the
    heredoc's body and terminator; ``block`` numbers the code blocks of the document.
    """
    doc: str
    line: int
    text: str
    block: int
    source: str
    heredoc: str = ''

    @property
    def where(self) -> str:
        return f'{self.doc}:{self.line}'

    @property
    def key(self) -> str:
        """Equal for the same command written in two places (comments and spacing aside)."""
        return f'{self.text}\n{self.heredoc}'


def _fences(lines: Sequence[str], doc: str) -> Iterator[Tuple[str, int, int, str]]:
    """``(language, index of the opening fence, index of the closing fence, indentation)``
    of each fenced block of ``lines``; a block that is never closed raises
    :class:`DocsTableError`."""
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        opened, fence = i, m.group('fence')
        i += 1
        while i < len(lines) and not _closes(lines[i], fence):
            i += 1
        if i == len(lines):
            raise DocsTableError(f'{doc}:{opened + 1}: code block opened with {fence} is never '
                                 f'closed')
        yield m.group('lang').lower(), opened, i, m.group('indent')
        i += 1


def code_blocks(text: str, doc: str = '<text>') -> Iterator[Tuple[str, int, List[str]]]:
    """``(language, line of the first content line, content lines)`` of each fenced block.

    Fences may be indented (a block inside a list item): that indentation is removed from the
    content lines.
    """
    lines = text.split('\n')
    for lang, opened, closed, indent in _fences(lines, doc):
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[opened + 1:closed]]
        yield lang, opened + 2, body


def prose(text: str, doc: str = '<text>') -> str:
    """``text`` with every fenced block (fences included) blanked, lines kept in place: what
    headings and links are looked for in."""
    lines = text.split('\n')
    for _, opened, closed, _ in list(_fences(lines, doc)):
        lines[opened:closed + 1] = [''] * (closed + 1 - opened)
    return '\n'.join(lines)


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` at a word start outside quotes)."""
    quote = ''
    prev = ' '
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and (quote == "'" or prev != '\\'):
                quote = ''
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and prev in ' \t':
            return line[:i].rstrip()
        prev = ch
    return line.rstrip()


def block_commands(doc: str, block: int, first_line: int, lines: Sequence[str]
                   ) -> List[DocCommand]:
    """The commands of one shell block: comment and blank lines skipped, ``\\`` continuations
    joined, a heredoc's body (up to its terminator) attached to the command that opens it."""
    out: List[DocCommand] = []
    i = 0
    while i < len(lines):
        line = strip_comment(lines[i])
        if not line.strip():
            i += 1
            continue
        start, parts = i, []
        while line.endswith('\\') and i + 1 < len(lines):
            parts.append(line[:-1])
            i += 1
            line = strip_comment(lines[i])
        parts.append(line)
        text = ' '.join(' '.join(parts).split())
        i += 1
        heredoc = ''
        m = HEREDOC_RE.search(text)
        if m:
            heredoc, i = _heredoc_body(lines, i, m.group('word'), bool(m.group('dash')),
                                       f'{doc}:{first_line + start}')
        out.append(DocCommand(doc, first_line + start, text, block,
                              '\n'.join(lines[start:i]), heredoc))
    return out


def _heredoc_body(lines: Sequence[str], i: int, word: str, dash: bool, where: str
                  ) -> Tuple[str, int]:
    body = []
    while i < len(lines):
        body.append(lines[i])
        done = (lines[i].lstrip('\t') if dash else lines[i]) == word
        i += 1
        if done:
            return '\n'.join(body), i
    raise DocsTableError(f'{where}: heredoc <<{word} is never closed by a line {word!r}')


def doc_commands(text: str, doc: str) -> List[DocCommand]:
    """Every shell command of a document, in order."""
    out: List[DocCommand] = []
    for n, (lang, first_line, lines) in enumerate(code_blocks(text, doc)):
        if lang in SHELL_LANGS:
            out.extend(block_commands(doc, n, first_line, lines))
    return out


def doc_files(repo: Path = REPO) -> List[str]:
    """The documents of :data:`DOC_PATTERNS`, relative to ``repo``."""
    found: List[str] = []
    for pattern in DOC_PATTERNS:
        found += sorted(str(Path(p).relative_to(repo)) for p in glob.glob(str(repo / pattern)))
    return found


def all_commands(repo: Path = REPO, docs: Optional[Sequence[str]] = None) -> List[DocCommand]:
    """The commands of all documents, in document order."""
    out: List[DocCommand] = []
    for doc in docs if docs is not None else doc_files(repo):
        out += doc_commands((repo / doc).read_text(encoding='utf-8'), doc)
    return out


def assignments_only(cmd: DocCommand) -> bool:
    """True for ``NAME=value ...`` with no command word: it sets shell variables for the
    commands after it in its block."""
    try:
        words = shlex.split(cmd.text)
    except ValueError:
        return False
    return bool(words) and all(ASSIGN_RE.match(w) for w in words)


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Rule:
    """One reviewed entry: commands whose one-line text fully matches ``pattern``.

    ``reason`` is empty for a command that runs, else why it does not run here.  ``changes``
    replaces text of the command before it runs (``{tmp}`` is the scratch temp folder), and
    ``why`` says why; ``timeout`` is in seconds.  ``needs_env`` marks ``make`` / set-up
    commands that must find ``.venv`` up to date (else they would install into it).
    """
    pattern: str
    reason: str = ''
    changes: Tuple[Tuple[str, str], ...] = ()
    why: str = ''
    timeout: int = DEFAULT_TIMEOUT
    needs_env: bool = False

    @property
    def runs(self) -> bool:
        return not self.reason


def exact(command: str) -> str:
    """The pattern of exactly one command (whitespace collapsed)."""
    return re.escape(' '.join(command.split()))


PY = r'(?:\.venv/bin/)?python'
CFG = r'configs/[\w./-]+\.py'
#: reasons used by several entries
GPUS = 'needs GPUs: launches one process per GPU on a GPU node (8 or 16 GPUs)'
CLUSTER = 'needs a multi-node cluster (torchrun across nodes, or Slurm\'s srun)'
IMAGENET = ('needs ImageNet-1K (data/imagenet) and GPUs: hundreds of epochs; '
            'its CPU dry run is get_started.md section 4')
PLACEHOLDER = 'a synopsis: CONFIG / CKPT / [options] are placeholders, not a command'
NETWORK_CKPT = 'needs a released checkpoint downloaded first (network)'
OWN_PRETRAINING = ('needs the checkpoint of a 600-epoch ImageNet pretraining '
                   '(work_dirs/mixmae_swin-base-w14_16xb128-amp-coslr-600e_in1k/epoch_600.pth)')
SUITE = ('the test suite or a part of it: `make test` runs it, and this script runs inside it '
         '(the suite takes 20-35 min on 2 cores)')
SECOND_600 = ('a second 600-iteration demo schedule (about 3 min on 2 cores); `make demo` runs '
              'its 600 iterations in full, so this one runs 60 to check the command and give '
              'the k-NN below a checkpoint')
BENCHMARK = ('a timing benchmark of MixMAE-B for minutes of CPU (595 s for the first one, '
             'measured on a loaded 2-core machine); its figures mean something on an idle '
             'machine only')

TABLE: Tuple[Rule, ...] = (
    # --- quick start and set-up
    Rule(exact('make demo'), timeout=900, needs_env=True),
    Rule(exact('make env'), needs_env=True),
    Rule(exact('make test'), reason=SUITE),
    Rule(r'\.venv/bin/python -m pytest -q -p no:cacheprovider tests(/\S+)?', reason=SUITE),
    Rule(exact('git clone <this repository> mmmixmae && cd mmmixmae'),
         reason='placeholder <this repository>; cloning needs the network'),
    Rule(exact('.venv/bin/python -c "import mmcv._ext, mmpretrain, mmdet, mmseg, mmmixmae; '
               'print(\'ok\')"')),
    Rule(exact('bash tools/install/setup_env.sh --plan')),
    Rule(exact('MMMIXMAE_MMCV_OPS=cuda TORCH_CUDA_ARCH_LIST=9.0 bash tools/install/setup_env.sh '
               '--plan')),
    Rule(exact('eval "$(MMMIXMAE_MMCV_OPS=cuda TORCH_CUDA_ARCH_LIST=9.0 .venv/bin/python '
               'tools/install/mmcv_plan.py)"'),
         reason='sets the variables of the CUDA build on the line after it, which does not run '
                'here; the same plan runs as setup_env.sh --plan'),
    Rule(r'MMCV_CUDA_HOME=.* bash tools/install/build_mmcv\.sh .* cuda .*',
         reason='compiles mmcv\'s CUDA ops with nvcc: about 30 min on 2 cores'),
    Rule(r'bash tools/install/verify_mmcv_wheel\.sh ~/\.cache/mmmixmae/wheels/cuda\S+ \S+',
         reason='checks the CUDA wheel that the 30-minute build above it makes'),
    Rule(r'python3\.11 -m venv \.venv|\.venv/bin/pip install torch==\S+ torchvision==\S+ '
         r'--index-url \S+|bash tools/install/setup_env\.sh',
         reason='builds a new environment with another CUDA build of torch (network)'),
    Rule(r'bash tools/install/check_mim\.sh \S+',
         reason='installs openmim into a throwaway venv (network)'),
    Rule(exact('.venv/bin/python tools/misc/run_doc_commands.py --list')),
    Rule(exact('.venv/bin/python tools/misc/run_doc_commands.py'),
         reason='this script itself (tests/test_cluster/test_doc_commands.py runs it)'),
    # --- the demo
    Rule(exact('.venv/bin/python tools/demo/run_demo.py --iters 600 --work-dir work_dirs/demo '
               '--device cpu'),
         changes=(('--iters 600', '--iters 30'),),
         why='the 600 iterations are the run of `make demo`, which runs in full; this checks '
             'the options'),
    # --- pretraining, fine-tuning, transfer at full size
    Rule(rf'{PY} tools/train\.py configs/mixmae/mixmae_swin-(?:base|large|huge)\S+_in1k\.py'
         r'(?: --cfg-options \S+)*', reason=IMAGENET),
    Rule(r'NNODES=2 .*tools/dist_train\.sh .*', reason=CLUSTER),
    Rule(r'GPUS=16 .*tools/slurm_train\.sh .*', reason=CLUSTER),
    Rule(r'(?:\S+=\S+ )*(?:bash )?tools/dist_train\.sh configs/\S+(?:coco|ade20k-512x512|in1k)\.py '
         r'(?:8|16)\b.*', reason=GPUS),
    Rule(r'(?:bash )?tools/dist_test\.sh \S+ \S+ 8', reason=GPUS),
    Rule(r'mim (?:train|test) mm(?:det|seg) .*--gpus 8 .*',
         reason='openmim is not in the environment (docs/en/faq.md), and ' + GPUS),
    Rule(rf'{PY} tools/train\.py CONFIG --resume.*|tools/dist_train\.sh CONFIG 8 --resume',
         reason=PLACEHOLDER),
    Rule(rf'{PY} tools/(?:visualization/visualize_reconstruction|analysis_tools/knn_linear_probe)'
         r'\.py .*\[--.*', reason=PLACEHOLDER),
    Rule(rf'{PY} tools/test\.py configs/mixmae/benchmarks/\S+ work_dirs/\S+/epoch_100\.pth',
         reason='needs ImageNet-1K and a fine-tuned checkpoint (100 epochs on GPUs)'),
    Rule(rf'{PY} tools/misc/dry_run\.py configs/mask_rcnn/mask-rcnn_mixmae-base_fpn_amp-1x_coco\.py'
         r' --data-root /path/to/coco --iters 2',
         reason='/path/to/coco is a placeholder for full COCO; at full size one iteration and '
                'a validation take over 26 min on 2 cores (the table below it)'),
    # --- get_started.md section 4: the dry runs on the miniature data sets
    Rule(exact('.venv/bin/python tools/misc/make_mini_datasets.py /tmp/mini'),
         changes=(('/tmp/mini', '{tmp}/mini'),), why='writes into the scratch folder'),
    Rule(rf'{PY} tools/misc/dry_run\.py {CFG} --data-root /tmp/mini/\S+ --iters 1.*',
         changes=(('/tmp/mini', '{tmp}/mini'),), why='reads the scratch folder\'s copy'),
    # --- converters
    Rule(rf'{PY} tools/model_converters/mixmim_official_to_mmmixmae\.py base_600ep\.pth \S+',
         reason=NETWORK_CKPT + ' (an official Sense-X/MixMIM release)'),
    Rule(rf'{PY} tools/model_converters/mmpretrain_mixmim_to_mmmixmae\.py mixmim-\S+\.pth \S+',
         reason=NETWORK_CKPT + ' (an mmpretrain MixMIM release)'),
    Rule(rf'{PY} tools/model_converters/mmmixmae_to_backbone\.py work_dirs/mixmae_swin-base-w14_'
         r'16xb128-amp-coslr-600e_in1k/epoch_600\.pth \S+', reason=OWN_PRETRAINING),
    # --- sharded training on the CPU (pretrain.md section 9: FSDP, DeepSpeed ZeRO-2)
    Rule(exact('tools/dist_train.sh configs/mixmae/mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu.py 2')),
    Rule(exact('.venv/bin/python tools/model_converters/fsdp_sharded_to_full.py '
               'work_dirs/mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu/iter_8.pth '
               'work_dirs/mixmae_swin-toy-w4_2xb2-fsdp-8it_cpu/iter_8_full.pth')),
    Rule(exact('tools/dist_train.sh configs/mixmae/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu.py 2')),
    Rule(exact('.venv/bin/python tools/model_converters/deepspeed_to_full.py '
               'work_dirs/mixmae_swin-toy-w4_2xb2-zero2-8it_cpu/iter_8.pth iter_8_full.pth')),
    # --- transfer.md section 6 and the config READMEs: the CPU toy configs
    Rule(exact('.venv/bin/python tools/train.py '
               'configs/mixmae/mixmae_swin-toy-w4_1xb4-20it_cpu.py')),
    Rule(exact('.venv/bin/python tools/train.py '
               'configs/mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_coco-voc3.py')),
    Rule(exact('.venv/bin/python tools/train.py '
               'configs/mask_rcnn/mask-rcnn_mixmae-toy_fpn_1xb2-cpu_ade3.py')),
    Rule(exact('.venv/bin/python tools/train.py '
               'configs/upernet/upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py'),
         changes=(('upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py',
                   'upernet_mixmae-toy_1xb2-cpu_ade3-256x256.py --cfg-options '
                   'train_cfg.max_iters=40 train_cfg.val_interval=40 '
                   'default_hooks.checkpoint.interval=40'),),
         why='its 120 iterations take 3 min on 2 cores, the longest command here, and '
             'tests/test_seg/test_upernet_e2e.py trains this config for all 120 and checks the '
             'mIoU; here 40 iterations, the validation and the checkpoint check the command'),
    # --- backbones.md: the other encoders' demo configs
    Rule(exact('.venv/bin/python tools/analysis_tools/get_flops.py '
               'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py')),
    Rule(exact('.venv/bin/python tools/demo/run_demo.py --config '
               'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py '
               '--work-dir work_dirs/convnext600'),
         changes=(('--work-dir work_dirs/convnext600',
                   '--iters 60 --work-dir work_dirs/convnext600'),),
         why=SECOND_600),
    Rule(exact('.venv/bin/python tools/benchmarks/config_step_time.py '
               'configs/mixmae/mixmae_swin-demo-w8_1xb16-600it_photos_cpu.py '
               'configs/mixmae/mixmae_swin-demo-w4_1xb16-600it_photos_cpu.py '
               'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py '
               'configs/mixmae/mixmae_pcpvt-demo_1xb16-600it_photos_cpu.py '
               'configs/mixmae/mixmae_svt-demo_1xb16-600it_photos_cpu.py --batch 16 --steps 10')),
    Rule(exact(".venv/bin/python - <<'PY'")),
    Rule(exact('.venv/bin/python tools/analysis_tools/knn_linear_probe.py '
               'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py --random-init '
               'work_dirs/photo_crops --k 5 --size 128')),
    Rule(exact('.venv/bin/python tools/analysis_tools/knn_linear_probe.py '
               'configs/mixmae/mixmae_convnext-demo_1xb16-600it_photos_cpu.py '
               'work_dirs/convnext600/iter_600.pth work_dirs/photo_crops --k 5 --size 128'),
         changes=(('convnext600/iter_600.pth', 'convnext600/iter_60.pth'),),
         why='the checkpoint of the shortened ConvNeXt run above'),
    # --- benchmarks.md
    Rule(exact('.venv/bin/python tools/benchmarks/train_step_vs_mmpretrain.py --arch base '
               '--batch 4 --steps 6'), reason=BENCHMARK),
    Rule(exact('.venv/bin/python tools/benchmarks/compile_vs_eager.py --arch base --batch 4 '
               '--steps 4'), reason=BENCHMARK + '; torch.compile of MixMAE-B adds minutes'),
    Rule(exact('.venv/bin/python tools/benchmarks/gpu_suite.py --out work_dirs/gpu_suite'),
         reason='times MixMAE-B/L/H on a GPU (refuses to run without one)'),
    Rule(exact('.venv/bin/python tools/benchmarks/gpu_suite.py --smoke --out '
               'work_dirs/gpu_suite_smoke')),
    Rule(r'PYTHONPATH=\. OMP_NUM_THREADS=1 nice -n \d+ \.venv/bin/python '
         r'tools/benchmarks/fsdp_memory\.py --arch (?:base large|large) .*',
         reason='MixMAE-B and -L under DDP and FSDP on 2 CPU ranks: over 12 min on 2 cores '
                '(benchmarks.md)'),
)


# --------------------------------------------------------------------------- classification
@dataclass
class Planned:
    """A command with its table entry and, once run, its result."""
    cmd: DocCommand
    rule: Optional[Rule]
    status: str = ''          # passed / FAILED / not run / same as / sets variables
    note: str = ''            # the reason, the change made, or the tail of the output
    seconds: float = 0.0
    ran: str = ''             # the script actually run, when it differs from the docs'
    prelude: List[str] = field(default_factory=list)


def classify(commands: Sequence[DocCommand], table: Sequence[Rule] = TABLE) -> List[Planned]:
    """Each command with the first table entry that matches it.

    Raises :class:`DocsTableError` naming every command no entry matches and every entry that
    matches no command.
    """
    plans: List[Planned] = []
    used = [False] * len(table)
    unlisted: List[str] = []
    for cmd in commands:
        if assignments_only(cmd):
            plans.append(Planned(cmd, None, status='sets variables',
                                 note='for the commands after it in its block'))
            continue
        hit = next((k for k, rule in enumerate(table) if re.fullmatch(rule.pattern, cmd.text)),
                   None)
        if hit is None:
            unlisted.append(f'{cmd.where}: not in the table of tools/misc/run_doc_commands.py '
                            f'(add it as runnable, or with the reason it cannot run): {cmd.text}')
            continue
        used[hit] = True
        rule = table[hit]
        plans.append(Planned(cmd, rule, status='' if rule.runs else 'not run', note=rule.reason))
    stale = [f'tools/misc/run_doc_commands.py: table entry {rule.pattern!r} matches no command '
             f'of the docs (remove or update it)' for rule, u in zip(table, used) if not u]
    if unlisted or stale:
        raise DocsTableError('\n'.join(unlisted + stale))
    _attach_preludes(plans)
    return plans


def _attach_preludes(plans: Sequence[Planned]) -> None:
    """Give each command the variable assignments that precede it in its block."""
    for k, plan in enumerate(plans):
        if plan.status == 'sets variables':
            for later in plans[k + 1:]:
                if (later.cmd.doc, later.cmd.block) != (plan.cmd.doc, plan.cmd.block):
                    break
                later.prelude.append(plan.cmd.source)


# --------------------------------------------------------------------------- running
#: what a checkout outside git leaves out of the scratch copy (as .gitignore does)
NOT_COPIED = ('.git', '.venv', 'work_dirs', 'data', '__pycache__', '.pytest_cache',
              '.hypothesis', 'build', 'dist', '*.egg-info', '.mim')


def copy_repo(repo: Path, dest: Path) -> None:
    """Copy the working tree's tracked and untracked-but-not-ignored files to ``dest`` (a
    tree that is not a git checkout: everything but :data:`NOT_COPIED`)."""
    try:
        listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others',
                                 '--exclude-standard'], cwd=repo, capture_output=True, text=True)
    except FileNotFoundError:  # no git
        listed = None
    if listed is None or listed.returncode != 0:
        shutil.copytree(repo, dest, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*NOT_COPIED))
        return
    for rel in filter(None, listed.stdout.split('\0')):
        src = repo / rel
        if not os.path.lexists(src) or src.is_dir():
            continue  # deleted in the working tree, or a submodule
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel, follow_symlinks=False)


def venv_dir(repo: Path) -> Path:
    """The environment the copy's ``.venv`` points at: the repository's, else the running
    interpreter's."""
    own = repo / '.venv'
    return own.resolve() if (own / 'bin' / 'python').exists() else Path(sys.prefix)


def env_not_ready(repo: Path, venv: Path) -> str:
    """Why ``tools/install/setup_env.sh`` would install into ``venv`` (empty: it would only
    report the environment up to date).  Mirrors the script's own stamp check."""
    names = ['tools/install/setup_env.sh', 'setup.py'] + sorted(
        str(p.relative_to(repo)) for p in (repo / 'requirements').glob('*.txt'))
    digest = hashlib.sha256(b''.join((repo / n).read_bytes() for n in names)).hexdigest()[:16]
    stamp = venv / '.mmmixmae-stamp'
    if not stamp.is_file() or stamp.read_text().strip() != digest:
        return f'{stamp} does not match the set-up files: run `make env` first'
    check = subprocess.run([str(venv / 'bin' / 'python'), '-c',
                            'import mmcv._ext, mmdet, mmseg, mmpretrain, mmmixmae'],
                           capture_output=True, text=True, cwd=repo)
    if check.returncode != 0:
        return f'{venv} does not import mmcv._ext, mmdet, mmseg, mmpretrain, mmmixmae'
    return ''


def command_env(copy: Path, data: Path, repo: Path) -> Dict[str, str]:
    """The environment of every command: sample data, the copy first on ``PYTHONPATH`` (the
    real checkout removed from it), no GPU, weights-only loading left on."""
    env = dict(os.environ)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env['MMMIXMAE_DATA'] = str(data)
    env['CUDA_VISIBLE_DEVICES'] = ''
    keep = [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
            if p and Path(p).resolve() != repo.resolve()]
    env['PYTHONPATH'] = os.pathsep.join([str(copy)] + keep)
    return env


def prepared_script(plan: Planned, tmp: Path) -> str:
    """The command as it runs: its block's variable assignments first, then its lines as
    the document has them, with the table's changes applied."""
    script = plan.cmd.source
    for old, new in plan.rule.changes:
        if old not in script:
            raise DocsTableError(f'{plan.cmd.where}: the table changes {old!r}, which the '
                                 f'command does not contain')
        script = script.replace(old, new.format(tmp=tmp))
    return '\n'.join(plan.prelude + [script])


def run_script(script: str, cwd: Path, env: Dict[str, str], timeout: int, log: Path
               ) -> Tuple[int, float]:
    """Run ``bash -c script`` with its output in ``log``; ``(exit status, seconds)``, status
    124 after a timeout (the whole process group is killed)."""
    start = time.monotonic()
    with open(log, 'wb') as out:
        proc = subprocess.Popen(['bash', '-o', 'pipefail', '-c', script], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code = 124
        except BaseException:  # interrupted: leave no command running behind
            _kill_group(proc)
            raise
    return code, time.monotonic() - start


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(errors='replace').rstrip('\n').split('\n')
    return '\n'.join(text[-lines:])


def selected(plan: Planned, only: Sequence[str]) -> bool:
    return not only or any(t in plan.cmd.where or t in plan.cmd.text for t in only)


@dataclass
class Workspace:
    """The scratch copy the commands run in, and what the run has learnt so far."""
    copy: Path                  # the repository copy (the commands' working directory)
    tmp: Path                   # ``{tmp}`` of the table's changes
    logs: Path                  # one output file per command
    env: Dict[str, str]
    venv: Path
    done: Dict[str, Planned] = field(default_factory=dict)   # command key -> first run
    helps: Dict[str, str] = field(default_factory=dict)      # tool -> its --help text


def make_workspace(repo: Path, data: Path, scratch: Path) -> Workspace:
    """Copy ``repo`` under ``scratch`` and link its ``.venv``."""
    ws = Workspace(scratch / 'repo', scratch / 'tmp', scratch / 'logs',
                   command_env(scratch / 'repo', data, repo), venv_dir(repo))
    for d in (ws.copy, ws.tmp, ws.logs):
        d.mkdir(parents=True, exist_ok=True)
    copy_repo(repo, ws.copy)
    (ws.copy / '.venv').symlink_to(ws.venv)
    return ws


def run_plans(plans: Sequence[Planned], repo: Path, data: Path, scratch: Path,
              only: Sequence[str] = (), report=print) -> None:
    """Run the runnable commands of ``plans`` in order in a copy of ``repo`` under
    ``scratch``, and check the options of the others against their tool's ``--help``;
    each plan's status is filled in, and ``report`` gets each plan when it is done."""
    ws = make_workspace(repo, data, scratch)
    for n, plan in enumerate(plans):
        if plan.status == 'not run':
            check_options(plan, ws)
        elif plan.status == 'sets variables':
            pass
        elif not selected(plan, only):
            plan.status, plan.note = 'not selected', '(--only)'
        else:
            _run_one(plan, n, ws)
        report(plan)


def _run_one(plan: Planned, n: int, ws: Workspace) -> None:
    script = prepared_script(plan, ws.tmp)
    key = '\n'.join(plan.prelude + [plan.cmd.key, repr(plan.rule.changes)])
    if key in ws.done:
        first = ws.done[key]
        plan.status, plan.note = 'same as', f'{first.cmd.where} ({first.status})'
        return
    ws.done[key] = plan
    if plan.rule.changes:
        plan.ran, plan.note = script, plan.rule.why
    if plan.rule.needs_env:
        problem = env_not_ready(ws.copy, ws.venv)
        if problem:
            plan.status, plan.note = 'FAILED', f'not started: {problem}'
            return
    log = ws.logs / f'{n:03d}.log'
    code, plan.seconds = run_script(script, ws.copy, ws.env, plan.rule.timeout, log)
    if code == 0:
        plan.status = 'passed'
    else:
        why = (f'timed out after {plan.rule.timeout} s' if code == 124 else
               f'killed by signal {-code}' if code < 0 else f'exit status {code}')
        plan.status, plan.note = 'FAILED', f'{why}; last lines of its output:\n{tail(log)}'


def documented_options(text: str) -> Tuple[str, List[str]]:
    """``(tool, options)``: the Python tool under ``tools/`` a command runs (for a launch
    script, the tool it passes its options to) and the ``--options`` the command gives it;
    ``('', [])`` for other commands (``mim``, ``make``, shell scripts)."""
    m = TOOL_RE.search(text)
    if text.startswith('mim ') or not m:
        return '', []
    tool = LAUNCHED.get(m.group(1), m.group(1))
    if not tool.endswith('.py'):
        return '', []
    return tool, sorted(set(OPTION_RE.findall(text[m.end():])))


def check_options(plan: Planned, ws: Workspace) -> None:
    """A command that does not run here still must name only options its tool has: they are
    looked up in the tool's ``--help`` (run once per tool, in the copy)."""
    tool, options = documented_options(plan.cmd.text)
    if not options:
        return
    if tool not in ws.helps:
        log = ws.logs / f'help-{len(ws.helps):02d}.log'
        code, _ = run_script(f'.venv/bin/python {tool} --help', ws.copy, ws.env, 300, log)
        ws.helps[tool] = log.read_text(errors='replace') if code == 0 else ''
    text = ws.helps[tool]
    missing = [o for o in options if not re.search(rf'(?<![\w-]){re.escape(o)}(?![\w-])', text)]
    if not text or missing:
        what = f'{tool} --help failed' if not text else \
            f'options not in {tool} --help: {" ".join(missing)}'
        plan.status, plan.note = 'FAILED', f'{what} (not run: {plan.rule.reason})'
    else:
        plan.note += f' [options {" ".join(options)} checked against {tool} --help]'


# --------------------------------------------------------------------------- report
def format_plan(plan: Planned) -> str:
    """One report entry: ``file:line  status  seconds  command``, then its note."""
    secs = f'{plan.seconds:7.1f} s' if plan.seconds else ' ' * 9
    text = plan.cmd.text if len(plan.cmd.text) <= 110 else plan.cmd.text[:107] + '...'
    lines = [f'{plan.cmd.where:<31} {plan.status or "to run":<14} {secs}  {text}']
    if plan.ran:
        lines.append(f'{"":<31} ran as: {" ".join(plan.ran.split())[:150]}')
    if plan.note:
        lines += [f'{"":<31} {line}' for line in plan.note.split('\n')]
    return '\n'.join(lines)


def summary(plans: Sequence[Planned], seconds: float) -> str:
    counts: Dict[str, int] = {}
    for plan in plans:
        counts[plan.status or 'runnable'] = counts.get(plan.status or 'runnable', 0) + 1
    parts = ', '.join(f'{v} {k}' for k, v in sorted(counts.items()))
    return f'{len(plans)} commands: {parts}; {seconds:.0f} s in all'


# --------------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='run_doc_commands.py',
                                description=__doc__.split('\n')[0])
    p.add_argument('--list', action='store_true',
                   help='print the classification and exit without running anything')
    p.add_argument('--only', nargs='+', default=[], metavar='TEXT',
                   help='run only the commands whose file:line or text contains TEXT')
    p.add_argument('--data', default=None,
                   help='sample data folder (default: $MMMIXMAE_DATA, else ../shared/data '
                        'next to the repository)')
    p.add_argument('--keep', action='store_true', help='keep the scratch folder')
    p.add_argument('--json', default=None, metavar='OUT', help='also write the results here')
    return p.parse_args(argv)


def data_folder(arg: Optional[str], repo: Path = REPO) -> Path:
    """``--data``, else ``$MMMIXMAE_DATA`` (relative: to the repository root), else
    ``../shared/data``; it must exist."""
    raw = arg or os.environ.get('MMMIXMAE_DATA') or '../shared/data'
    path = Path(raw) if os.path.isabs(raw) or arg else repo / raw
    path = path.resolve()
    if not path.is_dir():
        raise DocsTableError(f'sample data folder {path} not found (set MMMIXMAE_DATA or --data)')
    return path


def _interrupted(signum: int, frame) -> None:
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        plans = classify(all_commands(REPO))
        if args.list:
            for plan in plans:
                print(format_plan(plan))
            return 0
        data = data_folder(args.data)
    except DocsTableError as err:
        print(f'run_doc_commands.py: error: {err}', file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix='mmmixmae-doc-commands-'))
    signal.signal(signal.SIGTERM, _interrupted)  # the scratch folder is removed on SIGTERM too
    start = time.monotonic()
    try:
        run_plans(plans, REPO, data, scratch, args.only,
                  report=lambda plan: print(format_plan(plan), flush=True))
    except DocsTableError as err:
        print(f'run_doc_commands.py: error: {err}', file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f'scratch folder kept: {scratch}')
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(summary(plans, time.monotonic() - start))
    if args.json:
        Path(args.json).write_text(json.dumps([_as_json(p) for p in plans], indent=1))
    return 1 if any(p.status == 'FAILED' for p in plans) else 0


def _as_json(plan: Planned) -> dict:
    return dict(where=plan.cmd.where, command=plan.cmd.text, status=plan.status,
                note=plan.note, seconds=round(plan.seconds, 1), ran=plan.ran,
                runnable=bool(plan.rule and plan.rule.runs))


if __name__ == '__main__':
    sys.exit(main())
