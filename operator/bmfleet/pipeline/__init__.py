"""bmfleet.pipeline."""
