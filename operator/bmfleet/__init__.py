"""bmfleet: compile, gate and roll out SOPHGO bmodels to BM1684 edge fleets."""

__version__ = "0.1.0"
