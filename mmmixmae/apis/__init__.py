"""Helpers shared by the user-facing tools (visualization, analysis, demo)."""
from .common import (ToolError, build_model, check_file, extract_state_dict, load_backbone_weights,
                     load_model_weights, load_tool_config, normalization_of, read_rgb,
                     resize_center_crop, run_tool)
from .reconstruction import (PairReconstruction, compose_grid, reconstruct_pair,
                             visible_statistics)

__all__ = [
    'ToolError', 'build_model', 'check_file', 'extract_state_dict', 'load_backbone_weights',
    'load_model_weights', 'load_tool_config', 'normalization_of', 'read_rgb',
    'resize_center_crop', 'run_tool', 'PairReconstruction', 'compose_grid', 'reconstruct_pair',
    'visible_statistics'
]
