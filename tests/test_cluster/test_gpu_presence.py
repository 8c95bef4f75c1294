"""No silent CPU fallback: GPUs present but unusable stop a launcher run (faked detection)."""
import pytest

from mmmixmae.utils import gpu_presence
from mmmixmae.utils.gpu_presence import UnusableGPUError, refuse_hidden_gpus


def test_device_nodes_are_the_numbered_ones(tmp_path):
    for name in ('nvidia0', 'nvidia1', 'nvidiactl', 'nvidia-uvm', 'null'):
        (tmp_path / name).write_text('')
    assert gpu_presence.nvidia_device_nodes(tmp_path) == ['nvidia0', 'nvidia1']
    assert gpu_presence.nvidia_device_nodes(tmp_path / 'absent') == []


def test_nvidia_smi_lines():
    out = 'GPU 0: NVIDIA H200 (UUID: GPU-1)\nGPU 1: NVIDIA H200 (UUID: GPU-2)\n'
    assert gpu_presence.nvidia_smi_gpus(lambda cmd: out) == [
        'GPU 0: NVIDIA H200 (UUID: GPU-1)', 'GPU 1: NVIDIA H200 (UUID: GPU-2)']

    def broken(cmd):
        raise OSError('nvidia-smi failed: driver/library version mismatch')
    assert gpu_presence.nvidia_smi_gpus(broken) == []


def test_gpus_present_but_unusable_stop_the_run():
    with pytest.raises(UnusableGPUError) as err:
        refuse_hidden_gpus(environ={}, nodes=['nvidia0'], smi=['GPU 0: NVIDIA H200'],
                           torch_cuda='13.0', init_error='The NVIDIA driver on your system is '
                           'too old (found version 12020)')
    msg = str(err.value)
    assert 'GPU 0: NVIDIA H200' in msg and 'torch was built for CUDA 13.0' in msg
    assert 'driver' in msg and 'found version 12020' in msg
    assert 'CUDA_VISIBLE_DEVICES=""' in msg
    with pytest.raises(UnusableGPUError, match='CPU-only build'):
        refuse_hidden_gpus(environ={}, nodes=['nvidia3'], smi=[], torch_cuda=None, init_error='')
    with pytest.raises(UnusableGPUError, match='/dev/nvidia3'):
        refuse_hidden_gpus(environ={}, nodes=['nvidia3'], smi=[], torch_cuda=None, init_error='')


@pytest.mark.parametrize('env', [{'CUDA_VISIBLE_DEVICES': ''}, {'CUDA_VISIBLE_DEVICES': '-1'}])
def test_gpus_hidden_on_purpose_allow_cpu(env):
    assert refuse_hidden_gpus(environ=env, nodes=['nvidia0'], smi=['GPU 0: X'],
                              torch_cuda='13.0', init_error='') is None


def test_no_gpu_at_all_allows_cpu():
    assert refuse_hidden_gpus(environ={'CUDA_VISIBLE_DEVICES': '0'}, nodes=[], smi=[],
                              torch_cuda='13.0', init_error='') is None


def test_the_gloo_switch_refuses_when_gpus_are_present(monkeypatch):
    """Through mmmixmae.compat's wrapped mmengine init_dist: stops before any process group."""
    import torch
    from mmengine.dist import utils as dist_utils

    import mmmixmae  # noqa: F401  (applies compat)
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(gpu_presence, 'nvidia_device_nodes', lambda: ['nvidia0', 'nvidia1'])
    monkeypatch.setattr(gpu_presence, 'nvidia_smi_gpus', lambda: [])
    monkeypatch.setattr(gpu_presence, '_torch_init_error', lambda: 'driver too old')
    with pytest.raises(UnusableGPUError, match=f'CUDA {torch.version.cuda}'):
        dist_utils._init_dist_pytorch('nccl')
    assert not torch.distributed.is_initialized()
