"""The set-up's mmcv decisions (tools/install/mmcv_plan.py, setup_env.sh --plan), faked hosts."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


def fake_torch(tmp_path: Path, with_headers: bool = True) -> Path:
    """A site-packages with torch/ and nvidia/{cu13,cudnn}/include like torch's CUDA wheels."""
    site = tmp_path / 'site-packages'
    (site / 'torch').mkdir(parents=True)
    for pkg, header in (('cu13', 'cusparse.h'), ('cudnn', 'cudnn.h')):
        inc = site / 'nvidia' / pkg / 'include'
        inc.mkdir(parents=True)
        if with_headers:
            (inc / header).write_text('')
    (site / 'nvidia' / 'nccl').mkdir()  # no include/: not listed
    return site / 'torch'


def test_auto_picks_cuda_only_with_a_visible_gpu(mmcv_plan):
    Host = mmcv_plan.Host
    assert mmcv_plan.choose_ops(None, Host()) == 'cpu'
    assert mmcv_plan.choose_ops('auto', Host(torch_capabilities=[(9, 0)])) == 'cuda'
    assert mmcv_plan.choose_ops('', Host(smi_capabilities=['8.0'])) == 'cuda'
    assert mmcv_plan.choose_ops('cpu', Host(torch_capabilities=[(9, 0)])) == 'cpu'
    assert mmcv_plan.choose_ops('CUDA', Host(torch_cuda='13.0')) == 'cuda'
    with pytest.raises(mmcv_plan.PlanError, match="MMMIXMAE_MMCV_OPS='gpu'"):
        mmcv_plan.choose_ops('gpu', Host())
    with pytest.raises(mmcv_plan.PlanError, match='CPU build'):
        mmcv_plan.choose_ops('cuda', Host(torch_dir=Path('/x/torch'), torch_cuda=None))


def test_arch_list_from_env_or_from_the_visible_gpus(mmcv_plan):
    Host = mmcv_plan.Host
    two = Host(torch_capabilities=[(9, 0), (8, 0), (9, 0)])
    assert mmcv_plan.arch_list(None, two) == ['8.0', '9.0']
    assert mmcv_plan.arch_list('10.0;8.6 9.0+PTX', two) == ['8.6', '9.0+PTX', '10.0']
    assert mmcv_plan.arch_list(None, Host(smi_capabilities=['8.9'])) == ['8.9']
    with pytest.raises(mmcv_plan.PlanError, match='set TORCH_CUDA_ARCH_LIST'):
        mmcv_plan.arch_list('', Host())
    with pytest.raises(mmcv_plan.PlanError, match=r"\['sm_90'\]"):
        mmcv_plan.arch_list('sm_90', Host())


def test_cache_key_names_cuda_version_and_arch(mmcv_plan):
    assert mmcv_plan.cache_subdir('cpu', '13.0', []) == ''
    assert mmcv_plan.cache_subdir('cuda', '13.0', ['9.0']) == 'cuda13.0-sm90'
    assert mmcv_plan.cache_subdir('cuda', '12.6', ['8.0', '9.0+PTX']) == 'cuda12.6-sm80_90ptx'


def fake_toolkit(tmp_path: Path, with_crt: bool = True) -> Path:
    """A CUDA toolkit root with include/crt/host_defines.h (what torch's headers include)."""
    home = tmp_path / 'cuda-13.0'
    (home / 'include' / 'crt').mkdir(parents=True)
    if with_crt:
        (home / 'include' / 'crt' / 'host_defines.h').write_text('')
    return home


def test_cuda_plan_finds_the_headers_next_to_torch(mmcv_plan, tmp_path):
    torch_dir = fake_torch(tmp_path)
    home = fake_toolkit(tmp_path)
    host = mmcv_plan.Host(torch_cuda='13.0', torch_dir=torch_dir, torch_capabilities=[(9, 0)],
                          cuda_home=home)
    plan = mmcv_plan.make_plan({}, host)
    nvidia = torch_dir.parent / 'nvidia'
    # the toolkit's own headers first (torch's cu13/include lacks the crt/ headers)
    assert plan == {'MMCV_OPS': 'cuda', 'MMCV_ARCH_LIST': '9.0',
                    'MMCV_CPATH': f'{home}/include:{nvidia}/cu13/include:{nvidia}/cudnn/include',
                    'MMCV_CACHE_SUBDIR': 'cuda13.0-sm90', 'MMCV_CUDA_HOME': str(home),
                    'MMCV_GPU_VISIBLE': '1', 'TORCH_CUDA': '13.0'}
    no_nvcc = mmcv_plan.Host(torch_cuda='13.0', torch_dir=torch_dir, torch_capabilities=[(9, 0)])
    with pytest.raises(mmcv_plan.PlanError, match='needs nvcc.*or set CUDA_HOME'):
        mmcv_plan.make_plan({}, no_nvcc)
    bare = mmcv_plan.Host(torch_cuda='13.0', torch_dir=torch_dir, torch_capabilities=[(9, 0)],
                          cuda_home=fake_toolkit(tmp_path / 'bare', with_crt=False))
    with pytest.raises(mmcv_plan.PlanError, match='no include/crt/host_defines.h under'):
        mmcv_plan.make_plan({}, bare)
    assert mmcv_plan.find_cuda_home({'CUDA_HOME': str(home)}) == home
    cpu = mmcv_plan.make_plan({}, mmcv_plan.Host(torch_cuda='13.0', torch_dir=torch_dir))
    assert (cpu['MMCV_OPS'], cpu['MMCV_CPATH'], cpu['MMCV_CACHE_SUBDIR']) == ('cpu', '', '')


def test_cuda_plan_without_headers_is_refused(mmcv_plan, tmp_path):
    torch_dir = fake_torch(tmp_path, with_headers=False)
    host = mmcv_plan.Host(torch_cuda='13.0', torch_dir=torch_dir)
    env = {'MMMIXMAE_MMCV_OPS': 'cuda', 'TORCH_CUDA_ARCH_LIST': '9.0'}
    with pytest.raises(mmcv_plan.PlanError, match='no cusparse.h under'):
        mmcv_plan.make_plan(env, host)


@pytest.mark.slow
def test_plan_script_on_this_host(repo):
    """The real script with the real torch (a CUDA 13.0 build here, no GPU, nvcc 13.0)."""
    import shutil
    import torch
    if not (shutil.which('nvcc') or os.environ.get('CUDA_HOME')):
        pytest.skip('no CUDA toolkit (nvcc) on this machine')
    env = dict(os.environ, MMMIXMAE_MMCV_OPS='cuda', TORCH_CUDA_ARCH_LIST='9.0')
    out = subprocess.run([sys.executable, 'tools/install/mmcv_plan.py'], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    plan = dict(line.split('=', 1) for line in out.stdout.split())
    cuda = torch.version.cuda
    assert plan['MMCV_OPS'] == "'cuda'" and plan['MMCV_ARCH_LIST'] == "'9.0'"
    assert plan['MMCV_CACHE_SUBDIR'] == f"'cuda{cuda}-sm90'"
    nvidia = Path(torch.__file__).parent.parent / 'nvidia'
    assert any((Path(p) / 'cusparse.h').is_file() for p in plan['MMCV_CPATH'].strip("'").split(':'))
    assert str(nvidia) in plan['MMCV_CPATH']
    home = Path(plan['MMCV_CUDA_HOME'].strip("'"))
    assert (home / 'include' / 'crt' / 'host_defines.h').is_file()  # the real toolkit root
    env.pop('TORCH_CUDA_ARCH_LIST')
    refused = subprocess.run([sys.executable, 'tools/install/mmcv_plan.py'], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=120)
    if not torch.cuda.is_available():
        assert refused.returncode == 2 and 'set TORCH_CUDA_ARCH_LIST' in refused.stderr


@pytest.mark.slow
def test_setup_env_plan_keeps_the_installed_torch(repo):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    env = dict(os.environ, MMMIXMAE_VENV=venv, MMMIXMAE_MMCV_OPS='cpu')
    out = subprocess.run(['bash', 'tools/install/setup_env.sh', '--plan'], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import torch
    assert f"TORCH='keep {torch.__version__}'" in out.stdout
    assert "MMCV_OPS='cpu'" in out.stdout
