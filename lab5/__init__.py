"""lab5: multimodal (tweet text + image) sentiment analysis, as small tested modules that notebooks import."""
from .runtime import pin_numerics_env

pin_numerics_env()  # before anything imports torch: the same CPU kernels on every x86-64 machine (see runtime)

try:
    from .config import Config  # noqa: E402
    from .data import LABELS, Dataset, load_dataset  # noqa: E402
    from .errors import ConfigError, DataError  # noqa: E402
    from .splits import get_split  # noqa: E402
except ModuleNotFoundError as missing:  # an interpreter without the requirements, e.g. the machine's own python3
    from .runtime import use_project_venv

    use_project_venv(missing)  # `python -m lab5 ...` goes on in the project's .venv; otherwise a clear error

__all__ = ["Config", "ConfigError", "LABELS", "DataError", "Dataset", "get_split", "load_dataset"]
__version__ = "0.1.0"
