"""Command-line client of the MLOps control plane for CI pipelines: `python -m mlops_client --help`.

Standalone on purpose (standard library plus `requests`): a pipeline installs
`requests` and copies this folder, it never needs Django or the project.
"""

__version__ = "1.0.0"
