"""tools/benchmarks/gpu_suite.py --smoke runs end to end on the CPU and writes its tables."""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_gpu_suite_smoke_writes_json_and_markdown(tmp_path):
    cmd = [sys.executable, osp.join(ROOT, 'tools/benchmarks/gpu_suite.py'), '--smoke',
           '--out', str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    data = json.load(open(tmp_path / 'gpu_suite.json'))
    rows = data['sections'][0]['rows']
    assert [(r['attn path'], r['compiled']) for r in rows] == [('dense', False),
                                                               ('grouped', False)]
    for r in rows:
        assert r['images/s'] == pytest.approx(2 / r['step_s'], rel=0.01) and r['images/s'] > 0
        assert r['MFU'] is None  # no peak FLOP/s on the CPU
    # the grouped path is credited with less attention work than the dense one
    assert rows[1]['forward_macs_per_image'] < rows[0]['forward_macs_per_image']
    md = (tmp_path / 'gpu_suite.md').read_text()
    assert '| smoke-tiny | grouped | False | 2 |' in md


@pytest.mark.slow  # two interpreter start-ups
def test_gpu_suite_refuses_cuda_without_a_gpu_and_unknown_sections():
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is present')
    cmd = [sys.executable, osp.join(ROOT, 'tools/benchmarks/gpu_suite.py'), '--steps', '1']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and 'no CUDA device' in res.stderr
    res = subprocess.run(cmd[:2] + ['--smoke', '--sections', 'nope'], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "unknown sections ['nope']" in res.stderr


@pytest.mark.slow
def test_gpu_suite_sharding_section_on_two_cpu_ranks(tmp_path):
    """The sharded-training memory comparison (DDP / FSDP / FSDP + checkpointing) the suite
    runs on a GPU machine, here with the toy config on 2 gloo ranks."""
    cmd = [sys.executable, osp.join(ROOT, 'tools/benchmarks/gpu_suite.py'), '--smoke',
           '--sections', 'sharding', '--out', str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    data = json.load(open(tmp_path / 'gpu_suite.json'))
    assert [s['name'] for s in data['sections']] == ['sharding']
    rows = data['sections'][0]['rows']
    assert [(r['arch'], r['mode'], r['ranks']) for r in rows] == [
        ('toy', 'ddp', 2), ('toy', 'fsdp', 2), ('toy', 'fsdp-ckpt', 2)]
    for r in rows:
        # training needs memory above the libraries; the step ran and was timed
        assert r['peak MiB'] >= r['state MiB'] > 0 and r['peak - base MiB'] > 0
        assert r['step s'] > 0
    assert 'Sharded training: memory per rank' in (tmp_path / 'gpu_suite.md').read_text()
