"""mmmixmae.utils.third_party_logs: only deepspeed's CPU-accelerator notice is dropped."""
import logging

import mmmixmae  # noqa: F401  (installs the filters)
from mmmixmae.utils.third_party_logs import _DropText, quiet_third_party_logs


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_drops_only_the_cpu_accelerator_notice():
    logger = logging.getLogger('DeepSpeed')
    handler = _Collect()
    logger.addHandler(handler)
    try:
        logger.warning('Setting accelerator to CPU. If you have GPU or other accelerator, we '
                       'were unable to detect it.')
        logger.warning('Setting ds_accelerator to cuda (auto detect)')
        logger.error('ZeRO stage 3 needs a launcher')
    finally:
        logger.removeHandler(handler)
    assert handler.messages == ['Setting ds_accelerator to cuda (auto detect)',
                                'ZeRO stage 3 needs a launcher']


def test_installed_once_and_survives_set_level():
    logger = logging.getLogger('DeepSpeed')
    quiet_third_party_logs()
    quiet_third_party_logs()
    assert sum(isinstance(f, _DropText) for f in logger.filters) == 1
    level = logger.level
    logger.setLevel(logging.INFO)  # what deepspeed's logger factory does
    try:
        record = logging.LogRecord('DeepSpeed', logging.WARNING, __file__, 1,
                                   'Setting accelerator to CPU.', None, None)
        assert not logger.filter(record)
    finally:
        logger.setLevel(level)
    # other loggers are untouched
    assert not any(isinstance(f, _DropText) for f in logging.getLogger('mmengine').filters)
