"""Forecast evaluation: baselines, skill metrics, the archive of issued forecasts and their
verification. Judges forecast stores without knowing the model; never imports model or products."""
