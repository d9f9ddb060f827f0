"""Python SDK and command-line client of the MLOps control plane.

`from mlops_client import Client` in training scripts, pipelines and serving code (docs/sdk.md);
`mlops --help` or `python -m mlops_client --help` in CI (docs/cli.md). Standard library plus
`requests` only: it never needs Django or the project (`pip install ./mlops_client` installs it alone).
"""

__version__ = "1.1.0"

from .client import ApiError, CliError, ConnectionFailed, UsageError  # noqa: E402
from .sdk import Client  # noqa: E402

__all__ = ["ApiError", "CliError", "Client", "ConnectionFailed", "UsageError", "__version__"]
