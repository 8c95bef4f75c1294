"""Log lines of other packages that tell a user nothing and are dropped at ``import mmmixmae``.

mmengine imports ``deepspeed`` whenever it is installed (``mmengine._strategy.deepspeed``), and
deepspeed 0.19 picks its accelerator at import: on a host without GPUs it logs, in every
process of every tool, ``Setting accelerator to CPU. If you have GPU or other accelerator, we
were unable to detect it.``  On a CPU host that is expected; on a GPU host that torch cannot
use, :mod:`mmmixmae.utils.gpu_presence` stops a launcher run with a message naming the torch
CUDA version instead.  Only that exact line is dropped; every other deepspeed message passes.
"""
import logging

#: (logger name, the text that marks the record) of every dropped line
DROPPED = (('DeepSpeed', 'Setting accelerator to CPU'), )


class _DropText(logging.Filter):
    """Drops the records whose message contains ``text``."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_third_party_logs() -> None:
    """Install the filters (once per logger and text); call before deepspeed is imported.

    A filter on the logger object outlives deepspeed's own ``setLevel`` / handler set-up.
    """
    for name, text in DROPPED:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropText) and f.text == text for f in logger.filters):
            logger.addFilter(_DropText(text))
