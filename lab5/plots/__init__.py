"""Report figures and tables, saved under stable names in a figures folder the caller gives."""
from .cv import METRIC_NAMES, main_ablation, paired_differences, training_size_curve
from .dataset import captioned_images, class_balance, image_sizes, sample_grid, text_lengths
from .models import attention_examples, confusion_matrices, error_gallery, fusion_internals, learning_curves
from .style import CLASS_COLOURS, FINAL_COLOUR, MODEL_COLOURS, PLAIN_COLOUR, SERIES_COLOURS, save, save_table

__all__ = ["CLASS_COLOURS", "FINAL_COLOUR", "METRIC_NAMES", "MODEL_COLOURS", "PLAIN_COLOUR", "SERIES_COLOURS",
           "attention_examples", "captioned_images", "class_balance", "confusion_matrices", "error_gallery",
           "fusion_internals", "image_sizes", "learning_curves", "main_ablation", "paired_differences", "sample_grid",
           "save", "save_table", "text_lengths", "training_size_curve"]
