"""MultitaskVision: one vision model, several tasks and datasets, shipped to small devices."""

__version__ = "0.1.0"
