"""Close the process group at the end of a distributed run.

mmengine's Runner starts a process group for ``--launcher pytorch|slurm|mpi`` and never
closes it.  A process that then exits with the group still open can die in interpreter
finalization: gloo's worker threads may still hold finished work (with tensors that
reference Python objects) when the interpreter is torn down, and the process aborts with
``terminate called without an active exception`` (SIGABRT) after a successful run.  The
launcher reports that rank as failed and kills the others, so a finished training job
ends with a non-zero exit status (pytorch/pytorch#190489).

:func:`close_process_group` is called by the entry points once their work is done: every
rank waits for the others (so no rank leaves while another still needs a collective, for
example rank 0 writing the last checkpoint), then the group is destroyed, which joins the
backends' threads while the interpreter is still alive.
"""
from __future__ import annotations

__all__ = ['close_process_group']


def close_process_group() -> bool:
    """Barrier, then destroy the default process group; ``True`` if one was open.

    Nothing happens (``False``) in a single-process run.  Call it on the success path only:
    after an exception on one rank the barrier would wait for that rank forever, and the
    launcher stops the job anyway.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True
