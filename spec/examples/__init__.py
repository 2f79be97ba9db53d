"""The example specs (the ``*.toml`` files of this folder). The folder installs as the package
``neuroexec.examples`` (pyproject's package-dir), so that ``neuroexec init`` finds the same files in a wheel
as in a clone: this folder stays their only copy."""
