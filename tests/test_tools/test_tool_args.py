"""Argument checking and config overrides of tools/train.py and tools/test.py
(mmmixmae.utils.cli)."""

import pytest

from helpers.subprocesses import run_python
from helpers.tools import TOY_REGRESSION as TOY_CONFIG
from helpers.tools import TRAIN

from mmmixmae.utils import cli


def _one_line_error(returncode, stderr, *needles):
    assert returncode != 0
    assert 'Traceback' not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if 'error:' in ln]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.slow
def test_train_missing_config(tmp_path):
    """The real script, in a subprocess."""
    missing = tmp_path / 'no_such_config.py'
    proc = run_python([TRAIN, missing, '--work-dir', tmp_path / 'wd'])
    _one_line_error(proc.returncode, proc.stderr, str(missing), 'not found')
    assert proc.returncode == 2
    assert not (tmp_path / 'wd').exists()


def _main_error(main, argv, capsys):
    """Run a tool's main in-process (the scripts only call these) and return
    (exit status, stderr)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    return info.value.code, capsys.readouterr().err


def test_test_missing_config_and_checkpoint(tmp_path, capsys):
    missing = tmp_path / 'gone.py'
    code, err = _main_error(cli.test_main, [missing, tmp_path / 'x.pth'],
                            capsys)
    _one_line_error(code, err, str(missing), 'test.py')
    code, err = _main_error(cli.test_main,
                            [TOY_CONFIG, tmp_path / 'missing.pth'], capsys)
    _one_line_error(code, err, 'missing.pth', 'checkpoint')


def test_config_without_model(tmp_path, capsys):
    cfg = tmp_path / 'no_model.py'
    cfg.write_text("train_cfg = dict(max_iters=1)\n")
    code, err = _main_error(cli.train_main, [cfg], capsys)
    _one_line_error(code, err, str(cfg), 'model')


def test_test_out_must_be_pickle(tmp_path, capsys):
    ckpt = tmp_path / 'w.pth'
    ckpt.write_bytes(b'')
    code, err = _main_error(
        cli.test_main, [TOY_CONFIG, ckpt, '--out', tmp_path / 'r.json'],
        capsys)
    _one_line_error(code, err, 'r.json', '.pkl')


def _cfg():
    from mmengine.config import Config
    return Config.fromfile(str(TOY_CONFIG))


def _train_args(*argv):
    return cli.train_parser().parse_args([str(TOY_CONFIG), *argv])


def test_train_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args())
    assert cfg.work_dir == './work_dirs/toy_regression'
    assert cfg.launcher == 'none'
    assert not cfg.get('resume', False)

    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--resume', '--work-dir', 'w'))
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == 'w'

    ckpt = tmp_path / 'iter_2.pth'
    ckpt.write_bytes(b'')
    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--resume', str(ckpt)))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    with pytest.raises(cli.CLIError, match='nope.pth'):
        cli.apply_train_args(_cfg(), _train_args('--resume', 'nope.pth'))

    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--auto-scale-lr'))
    assert cfg.auto_scale_lr == dict(base_batch_size=8, enable=True)
    cfg = _cfg()
    cfg.pop('auto_scale_lr')
    with pytest.raises(cli.CLIError, match='base_batch_size'):
        cli.apply_train_args(cfg, _train_args('--auto-scale-lr'))

    args = _train_args('--cfg-options', 'train_cfg.max_iters=7',
                       'model.in_dim=3', '--launcher', 'pytorch')
    cfg = cli.load_config(args.config, args.cfg_options)
    cli.apply_train_args(cfg, args)
    assert cfg.train_cfg.max_iters == 7 and cfg.model.in_dim == 3
    assert cfg.launcher == 'pytorch'


def test_amp_flag(monkeypatch):
    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--amp'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    monkeypatch.setattr(cli, '_cuda_available', lambda: False)
    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--amp'))
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    cfg = _cfg()
    cfg.optim_wrapper.dtype = 'float16'
    with pytest.raises(cli.CLIError, match='bfloat16'):
        cli.apply_train_args(cfg, _train_args('--amp'))
    cfg = _cfg()
    cfg.optim_wrapper.type = 'ApexOptimWrapper'
    with pytest.raises(cli.CLIError, match='ApexOptimWrapper'):
        cli.apply_train_args(cfg, _train_args('--amp'))
    # on a GPU the dtype is left to the config (float16 by default)
    monkeypatch.setattr(cli, '_cuda_available', lambda: True)
    cfg = _cfg()
    cli.apply_train_args(cfg, _train_args('--amp'))
    assert 'dtype' not in cfg.optim_wrapper


def test_test_overrides(tmp_path):
    ckpt = tmp_path / 'w.pth'
    args = cli.test_parser().parse_args(
        [str(TOY_CONFIG), str(ckpt), '--out', 'r.pkl', '--work-dir', 'tw'])
    cfg = _cfg()
    cli.apply_test_args(cfg, args)
    assert cfg.load_from == str(ckpt) and cfg.resume is False
    assert cfg.work_dir == 'tw'
    cfg = _cfg()
    cfg.pop('test_evaluator')
    with pytest.raises(cli.CLIError, match='test_evaluator'):
        cli.apply_test_args(cfg, args)
