"""The method's metrics, each an evaluator plugin."""
