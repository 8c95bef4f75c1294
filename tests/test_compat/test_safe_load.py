"""weights_only loading: the allowlist, the restricted getattr stand-in and the
errors of ``mmmixmae.compat.load_checkpoint_safely``."""
import builtins
import io
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmmixmae.checkpoint import (HISTORY_BUFFER_STATISTICS, InvalidCheckpointError,
                                 UnsafeCheckpointError, checkpoint_safe_globals,
                                 load_checkpoint_safely, restricted_getattr)
from mmmixmae.compat import apply_compat

apply_compat()


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile checkpoint would hold."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_cmd(marker):
    return f'touch {marker}'


@pytest.mark.parametrize('kind', ['os.system', 'subprocess', 'eval'])
def test_hostile_pickle_refused_and_not_run(tmp_path, kind):
    marker = tmp_path / 'pwned'
    if kind == 'os.system':
        payload, expected = _Reduce(os.system, (_marker_cmd(marker), )), \
            'posix.system'
    elif kind == 'subprocess':
        payload = _Reduce(subprocess.check_call,
                          (['touch', str(marker)], ))
        # pickle protocol 2 writes subprocess under its Python 2 name
        expected = '.check_call'
    else:
        payload = _Reduce(builtins.eval, (f"open({str(marker)!r}, 'w')", ))
        expected = 'builtins.eval'
    path = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'x': payload}, path)

    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_safely(path)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert str(path) in str(err) and err.path == str(path)
    assert any(expected in g for g in err.offending), err.offending
    assert expected in str(err)
    assert 'weights_only=False' not in str(err)
    assert not marker.exists()

    # plain torch.load (weights_only defaults to True) refuses it as well
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_weights_only_is_not_disabled():
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    assert builtins.getattr not in torch.serialization.get_safe_globals()
    names = {g[1] for g in checkpoint_safe_globals() if isinstance(g, tuple)}
    assert 'builtins.getattr' in names
    assert (restricted_getattr, 'builtins.getattr') in \
        torch.serialization.get_safe_globals()


def test_restricted_getattr_allows_only_statistics():
    assert HISTORY_BUFFER_STATISTICS == {'min', 'max', 'mean', 'current'}
    for name in HISTORY_BUFFER_STATISTICS:
        assert restricted_getattr(HistoryBuffer, name) is getattr(
            HistoryBuffer, name)
    refused = [
        (HistoryBuffer, 'register_statistics'),
        (HistoryBuffer, 'statistics'),
        (HistoryBuffer, '__init__'),
        (HistoryBuffer, '__class__'),
        (HistoryBuffer, '_statistics_methods'),
        (os, 'system'),
        (builtins, 'eval'),
        (HistoryBuffer(), 'min'),  # an instance, not the class
        (type('Fake', (), {'min': print}), 'min'),
        (HistoryBuffer, 0),
    ]
    for obj, name in refused:
        with pytest.raises(pickle.UnpicklingError, match='refused'):
            restricted_getattr(obj, name)
    with pytest.raises(pickle.UnpicklingError):  # getattr with a default
        restricted_getattr(HistoryBuffer, 'min', None)


@pytest.mark.parametrize('target,name', [(HistoryBuffer, 'register_statistics'),
                                         (HistoryBuffer, '__init__'),
                                         (torch.Tensor, 'add_')])
def test_getattr_in_checkpoint_refused(tmp_path, target, name):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': _Reduce(getattr, (target, name))}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_safely(path)
    assert 'builtins.getattr' in str(info.value)
    assert repr(name) in str(info.value)


def test_history_buffer_and_numpy_round_trip(tmp_path):
    buf = HistoryBuffer()
    for value, count in [(1.5, 1), (2.5, 2), (-4.0, 1)]:
        buf.update(value, count)
    arrays = {
        str(dt): np.arange(3).astype(dt)
        for dt in (np.float16, np.float32, np.float64, np.int8, np.int32,
                   np.int64, np.uint8, np.bool_, np.complex64)
    }
    scalars = dict(eta=np.float64(12.25), best=np.float32(0.5),
                   n=np.int64(7), flag=np.bool_(True))
    path = tmp_path / 'hb.pth'
    torch.save(dict(hb=buf, arrays=arrays, scalars=scalars), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []

    out = load_checkpoint_safely(path)
    hb = out['hb']
    assert isinstance(hb, HistoryBuffer)
    np.testing.assert_array_equal(hb.data[0], [1.5, 2.5, -4.0])
    np.testing.assert_array_equal(hb.data[1], [1, 2, 1])
    assert hb.mean() == pytest.approx(0.0)  # (1.5 + 2.5 - 4.0) / 4
    assert hb.max() == 2.5 and hb.min() == -4.0 and hb.current() == -4.0
    assert hb.statistics('mean', 2) == pytest.approx(-0.5)
    assert hb._statistics_methods['min'] is HistoryBuffer.min
    for key, arr in arrays.items():
        assert out['arrays'][key].dtype == arr.dtype
        np.testing.assert_array_equal(out['arrays'][key], arr)
    for key, val in scalars.items():
        assert type(out['scalars'][key]) is type(val)
        assert out['scalars'][key] == val


def _respell_numpy_core(data: bytes) -> bytes:
    """Rewrite a torch.save archive as numpy 1.x would have written it
    (``numpy.core.multiarray`` instead of ``numpy._core.multiarray``)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in payload
                payload = payload.replace(b'numpy._core.multiarray',
                                          b'numpy.core.multiarray')
            dst.writestr(info.filename, payload)
    return out.getvalue()


def test_numpy1_module_spelling_accepted(tmp_path):
    buf = io.BytesIO()
    torch.save(dict(arr=np.array([1.25, -2.0]), eta=np.float64(3.5)), buf)
    path = tmp_path / 'numpy1.pth'
    path.write_bytes(_respell_numpy_core(buf.getvalue()))
    assert b'numpy.core.multiarray' in path.read_bytes()
    out = load_checkpoint_safely(path)
    np.testing.assert_array_equal(out['arr'], [1.25, -2.0])
    assert out['eta'] == 3.5 and isinstance(out['eta'], np.float64)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('these are not weights\n')
    with pytest.raises(InvalidCheckpointError, match='notes.pth'):
        load_checkpoint_safely(text)

    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(InvalidCheckpointError, match='empty.pth.*empty'):
        load_checkpoint_safely(empty)

    good = tmp_path / 'good.pth'
    torch.save({'w': torch.arange(1000.)}, good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:700])
    with pytest.raises(InvalidCheckpointError,
                       match='truncated.pth is truncated or corrupt'):
        load_checkpoint_safely(truncated)

    other_zip = tmp_path / 'other.pth'
    with zipfile.ZipFile(other_zip, 'w') as zf:
        zf.writestr('readme.txt', 'hello')
    with pytest.raises(InvalidCheckpointError, match='other.pth'):
        load_checkpoint_safely(other_zip)

    legacy = tmp_path / 'legacy.pth'
    torch.save({'w': torch.arange(50.)}, legacy,
               _use_new_zipfile_serialization=False)
    short = tmp_path / 'legacy_short.pth'
    short.write_bytes(legacy.read_bytes()[:40])
    with pytest.raises(InvalidCheckpointError, match='legacy_short.pth'):
        load_checkpoint_safely(short)

    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_safely(tmp_path / 'missing.pth')

    # the good files load, values intact, in both formats
    assert torch.equal(load_checkpoint_safely(good)['w'], torch.arange(1000.))
    assert torch.equal(load_checkpoint_safely(str(legacy))['w'],
                       torch.arange(50.))


def test_mmengine_loader_uses_safe_loader(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    from mmmixmae.compat import checkpoint_loader
    assert CheckpointLoader._schemes[''] is checkpoint_loader._load_from_local
    marker = tmp_path / 'pwned'
    path = tmp_path / 'hostile.pth'
    torch.save({'x': _Reduce(os.system, (_marker_cmd(marker), ))}, path)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_apply_compat_idempotent():
    from mmengine.dist import utils as dist_utils
    from mmengine.optim import AmpOptimWrapper
    from mmengine.runner import Runner
    before = (Runner.wrap_model, dist_utils._init_dist_pytorch,
              AmpOptimWrapper.__init__,
              len(torch.serialization.get_safe_globals()))
    apply_compat()
    from mmmixmae import compat
    compat._applied = False  # force the installers to run again
    apply_compat()
    after = (Runner.wrap_model, dist_utils._init_dist_pytorch,
             AmpOptimWrapper.__init__,
             len(torch.serialization.get_safe_globals()))
    assert before == after
    assert not hasattr(Runner.wrap_model.__wrapped__, '__wrapped__')


def test_allowlist_restored_after_safe_globals_block(tmp_path):
    buf = HistoryBuffer()
    buf.update(3.0)
    path = tmp_path / 'hb.pth'
    torch.save({'hb': buf}, path)
    # leaving this block removes HistoryBuffer from torch's allowlist again
    with torch.serialization.safe_globals([HistoryBuffer]):
        pass
    assert HistoryBuffer not in torch.serialization.get_safe_globals()
    assert load_checkpoint_safely(path)['hb'].mean() == 3.0
    assert HistoryBuffer in torch.serialization.get_safe_globals()
