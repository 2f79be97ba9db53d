"""MAPS folders: paths (layout), checkpoints, result tables, data groups."""
