"""The user docs match the code: every file, work dir, anchor and --cfg-options key they name
exists, and the documented commands that run on CPU in seconds do run."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from helpers.tools import load_tool

from mmmixmae.utils.cfg_overrides import missing_key

#: the docs' code-block parser and document list (tools/misc/run_doc_commands.py runs the
#: commands these tests only read)
DOC_COMMANDS = load_tool('misc/run_doc_commands')
DOCS = DOC_COMMANDS.doc_files()
PATH_RE = re.compile(r'(?<![\w/.-])((?:configs|tools)/[\w./-]+\.(?:py|sh))')
WORK_DIR_RE = re.compile(r'work_dirs/([\w.-]+)/')
LINK_RE = re.compile(r'\]\(([^)\s]*?)(?:#([\w-]+))?\)')
#: work dirs that no config name gives: run_demo.py's fixed folder
EXTRA_WORK_DIRS = {'demo'}


def read(repo, rel):
    with open(osp.join(repo, rel), encoding='utf-8') as f:
        return f.read()


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(text: str) -> set:
    """The anchors of the headings outside code blocks."""
    heads = re.findall(r'^#+ (.+)$', DOC_COMMANDS.prose(text), re.M)
    return {slug(h) for h in heads}


def commands(text: str, doc: str = '<doc>'):
    """Shell commands of the code blocks: continuations joined, comments dropped."""
    return [cmd.text for cmd in DOC_COMMANDS.doc_commands(text, doc)]


@pytest.mark.parametrize('doc', DOCS)
def test_named_files_exist(repo, doc):
    text = read(repo, doc)
    base = osp.dirname(doc)
    missing = []
    for path in set(PATH_RE.findall(text)):
        if any(c in path for c in '*<>') or '...' in path:
            continue
        if not (osp.exists(osp.join(repo, path)) or osp.exists(osp.join(repo, base, path))):
            missing.append(path)
    assert missing == [], f'{doc} names files that do not exist'


@pytest.mark.parametrize('doc', DOCS)
def test_work_dirs_are_produced_by_a_config(repo, doc):
    stems = {osp.splitext(osp.basename(p))[0]
             for p in glob.glob(osp.join(repo, 'configs', '**', '*.py'), recursive=True)}
    text = read(repo, doc)
    named = set(WORK_DIR_RE.findall(text))
    chosen = set(re.findall(r'--work-dir work_dirs/([\w.-]+)', text))  # set by the command itself
    assert sorted(named - stems - EXTRA_WORK_DIRS - chosen) == [], \
        f'{doc} names work_dirs that no config produces'


@pytest.mark.parametrize('doc', DOCS)
def test_links_and_anchors_resolve(repo, doc):
    text = read(repo, doc)
    broken = []
    for target, anchor in LINK_RE.findall(text):
        if target.startswith(('http://', 'https://', 'mailto:')):
            continue
        path = osp.normpath(osp.join(repo, osp.dirname(doc), target)) if target else \
            osp.join(repo, doc)
        if not osp.exists(path):
            broken.append(target)
        elif anchor and path.endswith('.md') and anchor not in anchors(open(path).read()):
            broken.append(f'{target}#{anchor}')
    assert broken == [], f'{doc}: broken links'


@pytest.mark.parametrize('doc', DOCS)
def test_cfg_options_keys_exist_in_the_named_config(repo, doc, monkeypatch):
    from mmengine.config import Config
    monkeypatch.chdir(repo)
    bad = []
    for cmd in commands(read(repo, doc), doc):
        if '--cfg-options' not in cmd or 'tools/' not in cmd:
            continue
        cfgs = [p for p in PATH_RE.findall(cmd) if p.startswith('configs/')]
        if not cfgs or not osp.isfile(cfgs[0]):
            continue
        cfg = Config.fromfile(cfgs[0])
        opts = cmd.split('--cfg-options', 1)[1].split()
        for opt in opts:
            if opt.startswith('-'):
                break
            key = opt.split('=', 1)[0]
            if '=' in opt and missing_key(cfg, key) is not None:
                bad.append(f'{cfgs[0]}: {key}')
    assert bad == [], f'{doc}: --cfg-options keys the config does not have'


@pytest.mark.slow
def test_documented_help_and_plan_commands_run(repo):
    """The CPU commands of README/docs that take seconds: --help of the tools, the set-up plan."""
    for tool, flags in (('tools/train.py', ['--pretrained', '--allow-new-keys', '--resume']),
                        ('tools/test.py', ['--allow-new-keys', '--out'])):
        out = subprocess.run([sys.executable, tool, '--help'], cwd=repo, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert all(f in out.stdout for f in flags), out.stdout
        assert 'depths' not in out.stdout  # MixMAESwin takes no depths argument
    venv = osp.dirname(osp.dirname(sys.executable))
    plan = subprocess.run(['bash', 'tools/install/setup_env.sh', '--plan'], cwd=repo,
                          env=dict(os.environ, MMMIXMAE_VENV=venv), capture_output=True,
                          text=True, timeout=300)
    assert plan.returncode == 0 and "MMCV_OPS='" in plan.stdout, plan.stderr
