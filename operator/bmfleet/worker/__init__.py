"""bmfleet.worker."""
