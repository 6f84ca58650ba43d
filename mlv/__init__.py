"""mlv: version datasets and model files next to the code that made them."""

__version__ = "0.1.0"
