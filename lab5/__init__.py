"""lab5: multimodal (tweet text + image) sentiment analysis, as small tested modules that notebooks import."""
from .config import Config
from .data import LABELS, DataError, Dataset, get_split, load_dataset

__all__ = ["Config", "LABELS", "DataError", "Dataset", "get_split", "load_dataset"]
__version__ = "0.1.0"
