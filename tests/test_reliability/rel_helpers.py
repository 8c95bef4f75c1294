"""Helpers of the reliability tests: training subprocesses and derived configs."""
import subprocess
import sys
from pathlib import Path

from helpers.subprocesses import REPO, scrubbed_env
from helpers.tools import TRAIN

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / 'configs'
PRETRAIN_CFG = CONFIGS / 'pretrain_epochs_toy.py'
FINETUNE_CFG = CONFIGS / 'finetune_layer_decay_toy.py'
TOY_CFG = REPO / 'configs' / 'mixmae' / 'mixmae_swin-toy-w4_1xb4-20it_cpu.py'


def train_env(threads=1):
    """The scrubbed subprocess environment with this folder importable (the configs name
    ``reliability_testkit`` in ``custom_imports``)."""
    return scrubbed_env(threads, import_dirs=[HERE])


def train_cmd(config, work_dir, *args, cfg_options=()):
    cmd = [sys.executable, str(TRAIN), str(config), '--work-dir', str(work_dir), *map(str, args)]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    return cmd


def start_train(config, work_dir, *args, cfg_options=(), threads=1):
    """Start tools/train.py in its own process (stdout+stderr to work_dir.log)."""
    log = open(f'{work_dir}.log', 'w')
    return subprocess.Popen(train_cmd(config, work_dir, *args, cfg_options=cfg_options),
                            stdout=log, stderr=subprocess.STDOUT, env=train_env(threads),
                            cwd=str(REPO))


def finish(proc, timeout=300):
    """Wait for a process from :func:`start_train`; returns (returncode, output)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    path = proc.args[proc.args.index('--work-dir') + 1] + '.log'
    with open(path) as f:
        return proc.returncode, f.read()


def run_train(config, work_dir, *args, cfg_options=(), threads=1, timeout=300):
    return finish(start_train(config, work_dir, *args, cfg_options=cfg_options,
                              threads=threads), timeout)


def derived_config(path, base, custom_hooks, **entries):
    """Write a config inheriting ``base`` with its own ``custom_hooks`` list."""
    lines = [f'_base_ = {str(base)!r}', f'custom_hooks = {custom_hooks!r}']
    lines += [f'{k} = {v!r}' for k, v in entries.items()]
    Path(path).write_text('\n'.join(lines) + '\n')
    return path


BASE_HOOKS = [dict(type='ExactResumeHook'), dict(type='RankMeanLogVarsHook'),
              dict(type='NonFiniteLossHook'), dict(type='RecordBatchHook')]
