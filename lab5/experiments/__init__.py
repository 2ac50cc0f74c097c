"""Ideas measured beside the core and not part of the final model's path: each module runs one idea and writes its
table (with a provenance ``.json`` beside it) for notebook 5 or 6 to read. The core never imports this package."""
