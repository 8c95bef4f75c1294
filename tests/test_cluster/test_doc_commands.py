"""tools/misc/run_doc_commands.py: the extractor and the table on small texts, the table
against the real docs, and (slow) every runnable command of the docs run for real."""
import json
import os
import re
import sys
from pathlib import Path

import pytest
from helpers.subprocesses import REPO, run_python
from helpers.tools import load_tool, tool_path

TOOL = tool_path('misc/run_doc_commands.py')
#: an upper bound for the whole run (about 10.5 min on 2 cores, 19.5 min when other jobs
#: loaded the machine; each command also has its own time limit in the script's table)
RUN_TIMEOUT = 2400


@pytest.fixture(scope='module')
def rdc():
    return load_tool('misc/run_doc_commands')


def _doc(*lines: str) -> str:
    return '\n'.join(lines) + '\n'


def test_continuations_comments_and_variable_prefixes(rdc):
    text = _doc('Intro', '', '```bash',
                '# a comment line',
                'FOO=1 BAR="a b" \\',
                '    python tools/x.py --a \\',
                '        --b   # a trailing comment',
                '',
                'echo "not # a comment" \'nor # this\'  # but this',
                '```')
    cmds = rdc.doc_commands(text, 'doc.md')
    assert [(c.line, c.text) for c in cmds] == [
        (5, 'FOO=1 BAR="a b" python tools/x.py --a --b'),
        (9, 'echo "not # a comment" \'nor # this\''),
    ]
    assert cmds[0].where == 'doc.md:5'
    # what runs is the document's own lines, quoted spaces and all
    assert cmds[0].source == ('FOO=1 BAR="a b" \\\n    python tools/x.py --a \\\n'
                              '        --b   # a trailing comment')


def test_heredoc_keeps_its_body_verbatim(rdc):
    text = _doc('```shell',
                ".venv/bin/python - <<'PY'",
                'import sys  # kept: this is Python',
                'x = 1 + \\',
                '    2',
                'PY',
                'make demo',
                '```')
    heredoc, make = rdc.doc_commands(text, 'd.md')
    assert heredoc.text == ".venv/bin/python - <<'PY'" and heredoc.line == 2
    assert heredoc.heredoc == 'import sys  # kept: this is Python\nx = 1 + \\\n    2\nPY'
    assert heredoc.source == '\n'.join(text.split('\n')[1:6])  # run as written
    assert (make.line, make.text) == (7, 'make demo')


def test_indented_fence_other_languages_and_bare_blocks(rdc):
    text = _doc('* item:', '', '  ```shell', '  python a.py \\', '      --x 1', '  ```', '',
                '```python', 'import os', '```', '```', 'make test', '```',
                '~~~sh', 'ls', '~~~')
    cmds = rdc.doc_commands(text, 'd.md')
    assert [(c.line, c.text) for c in cmds] == [(4, 'python a.py --x 1'), (15, 'ls')]


@pytest.mark.parametrize('text, message', [
    (_doc('```bash', "cat <<EOF", 'no end', '```'), 'd.md:2: heredoc <<EOF is never closed'),
    (_doc('text', '```bash', 'ls'), 'd.md:2: code block opened with ``` is never closed'),
])
def test_malformed_blocks_name_the_line(rdc, text, message):
    with pytest.raises(rdc.DocsTableError, match=re.escape(message)):
        rdc.doc_commands(text, 'd.md')


def test_a_command_missing_from_the_table_is_an_error_naming_file_and_line(rdc):
    cmds = rdc.doc_commands(_doc('```bash', 'make demo', 'rm -rf /tmp/x', '```'), 'new.md')
    table = (rdc.Rule(rdc.exact('make demo')),)
    with pytest.raises(rdc.DocsTableError) as err:
        rdc.classify(cmds, table)
    assert 'new.md:3: not in the table' in str(err.value)
    assert 'rm -rf /tmp/x' in str(err.value)
    assert 'make demo' not in str(err.value)


def test_a_table_entry_matching_nothing_is_an_error(rdc):
    cmds = rdc.doc_commands(_doc('```bash', 'make demo', '```'), 'd.md')
    table = (rdc.Rule(rdc.exact('make demo')), rdc.Rule(rdc.exact('make gone'), reason='x'))
    with pytest.raises(rdc.DocsTableError, match='matches no command of the docs') as err:
        rdc.classify(cmds, table)
    assert 'gone' in str(err.value) and 'demo' not in str(err.value)


def test_classification_reasons_changes_and_variables(rdc, tmp_path):
    cmds = rdc.doc_commands(_doc('```bash', 'CKPT=a/b.pth', 'tool.sh $CKPT 8',
                                 'python mk.py /tmp/mini', '```', '```bash', 'ls', '```'), 'd.md')
    table = (rdc.Rule(r'tool\.sh \S+ 8', reason='needs 8 GPUs'),
             rdc.Rule(rdc.exact('python mk.py /tmp/mini'), changes=(('/tmp/mini', '{tmp}/m'),),
                      why='scratch'),
             rdc.Rule('ls'))
    plans = rdc.classify(cmds, table)
    assert [p.status for p in plans] == ['sets variables', 'not run', '', '']
    assert plans[1].note == 'needs 8 GPUs'
    assert plans[2].prelude == ['CKPT=a/b.pth'] and plans[3].prelude == []  # another block
    assert rdc.prepared_script(plans[2], tmp_path) == f'CKPT=a/b.pth\npython mk.py {tmp_path}/m'


def test_the_real_docs_are_all_in_the_table(rdc):
    """Every command of README.md, docs/en/*.md and configs/*/README.md has a reviewed entry
    (this is what fails first when a command is added to the docs)."""
    plans = rdc.classify(rdc.all_commands())
    assert {p.cmd.doc for p in plans} >= {'README.md', 'docs/en/get_started.md'}
    runnable = [p for p in plans if p.rule and p.rule.runs]
    assert len(runnable) >= 15
    assert all(p.rule.why for p in runnable if p.rule.changes)


def test_make_commands_refuse_a_stale_environment(rdc, tmp_path):
    (tmp_path / 'tools' / 'install').mkdir(parents=True)
    (tmp_path / 'requirements').mkdir()
    (tmp_path / 'tools' / 'install' / 'setup_env.sh').write_text('echo\n')
    (tmp_path / 'setup.py').write_text('')
    (tmp_path / 'requirements' / 'a.txt').write_text('x\n')
    venv = tmp_path / 'venv'
    venv.mkdir()
    (venv / '.mmmixmae-stamp').write_text('0123456789abcdef\n')
    assert 'does not match the set-up files' in rdc.env_not_ready(tmp_path, venv)


def test_list_runs_nothing(rdc, capsys):
    assert rdc.main(['--list']) == 0
    out = capsys.readouterr().out
    assert re.search(r'^README\.md:\d+ +to run +make demo$', out, re.M)
    assert re.search(r'^README\.md:\d+ +not run +make test$', out, re.M)


@pytest.mark.slow
def test_every_runnable_doc_command_passes(shared_data, tmp_path):
    """Runs the script as the docs show it; the report names each failed command with the
    tail of its output."""
    report = tmp_path / 'doc_commands.json'
    work_dirs = REPO / 'work_dirs'
    before = set(os.listdir(work_dirs)) if work_dirs.is_dir() else set()
    proc = run_python([TOOL, '--data', shared_data, '--json', report], timeout=RUN_TIMEOUT)
    assert report.is_file(), proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(report.read_text())
    failed = [r for r in results if r['status'] == 'FAILED']
    assert proc.returncode == 0 and failed == [], proc.stdout[-8000:] + proc.stderr[-2000:]
    passed = [r for r in results if r['status'] == 'passed']
    assert len(passed) >= 15, proc.stdout[-4000:]
    assert not any(r['runnable'] and r['status'] == 'not selected' for r in results)
    after = set(os.listdir(work_dirs)) if work_dirs.is_dir() else set()
    assert after == before, f'the commands wrote into the repository: {sorted(after - before)}'


def test_commands_run_in_order_in_one_scratch_copy(rdc, tmp_path, monkeypatch):
    """A later command sees what an earlier one wrote; a repeat is not run again; a failure
    reports the end of its output; nothing runs in the repository itself."""
    text = _doc('```bash',
                'echo made > out.txt   # writes into the copy',
                'grep -q made out.txt && test "$MMMIXMAE_DATA" = "$EXPECTED_DATA"',
                'echo made  >  out.txt',
                'test "$(pwd)" != "$REAL_REPO" && test -f tools/misc/run_doc_commands.py',
                'echo about to fail; ls /no/such/folder',
                '```')
    table = (rdc.Rule(r'echo made > out\.txt'), rdc.Rule(r'grep .*'), rdc.Rule(r'test .*'),
             rdc.Rule(r'echo about.*'))
    plans = rdc.classify(rdc.doc_commands(text, 'd.md'), table)
    data = tmp_path / 'data'
    data.mkdir()
    monkeypatch.setenv('EXPECTED_DATA', str(data))
    monkeypatch.setenv('REAL_REPO', str(REPO))
    rdc.run_plans(plans, REPO, data, tmp_path / 'scratch', report=lambda plan: None)
    assert [p.status for p in plans] == ['passed', 'passed', 'same as', 'passed', 'FAILED']
    assert plans[2].note == 'd.md:2 (passed)'
    assert 'about to fail' in plans[4].note and 'exit status 2' in plans[4].note
    assert not (REPO / 'out.txt').exists()


def test_options_of_commands_that_do_not_run_are_checked_against_help(rdc, tmp_path):
    assert rdc.documented_options('NNODES=2 tools/dist_train.sh CFG 8 --resume --x=1') == \
        ('tools/train.py', ['--resume', '--x'])
    assert rdc.documented_options('mim train mmdet c.py --gpus 8') == ('', [])
    assert rdc.documented_options('bash tools/install/setup_env.sh --plan') == ('', [])
    copy = tmp_path / 'copy'
    (copy / 'tools').mkdir(parents=True)
    (copy / 'tools' / 'fake.py').write_text(
        'import argparse\np = argparse.ArgumentParser()\np.add_argument("--good-one")\n'
        'p.parse_args()\n')
    (copy / '.venv').symlink_to(sys.prefix)
    ws = rdc.Workspace(copy, tmp_path, tmp_path, dict(os.environ), Path(sys.prefix))
    cmds = rdc.doc_commands(_doc('```bash', 'python tools/fake.py A --good-one 1',
                                 'python tools/fake.py B --good --bad', '```'), 'd.md')
    plans = rdc.classify(cmds, (rdc.Rule(r'python tools/fake\.py .*', reason='needs a GPU'),))
    for plan in plans:
        rdc.check_options(plan, ws)
    assert plans[0].status == 'not run' and 'checked against tools/fake.py --help' in plans[0].note
    assert plans[1].status == 'FAILED'
    assert plans[1].note == ('options not in tools/fake.py --help: --bad --good '
                             '(not run: needs a GPU)')


def test_a_tree_outside_git_is_copied_without_outputs(rdc, tmp_path):
    src = tmp_path / 'src'
    for rel in ('tools/a.py', 'work_dirs/demo/iter_1.pth', 'mmmixmae/__pycache__/x.pyc'):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text('x')
    rdc.copy_repo(src, tmp_path / 'copy')
    copied = sorted(str(p.relative_to(tmp_path / 'copy')) for p in (tmp_path / 'copy').rglob('*'))
    assert copied == ['mmmixmae', 'tools', 'tools/a.py']
