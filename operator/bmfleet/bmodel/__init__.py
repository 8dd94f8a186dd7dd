"""bmfleet.bmodel."""
