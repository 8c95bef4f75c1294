"""Train loops that resume mid-epoch exactly (registered in mmengine's root ``LOOPS``)."""
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop

__all__ = ['ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop']
