"""bmfleet device agent: keeps the bmodels on a SOPHON SoC box in line with what the bmfleet gateway asks.

Standard library only, Python >= 3.8 (what the boxes ship). The wire protocol is docs/gateway-protocol.md.
"""

__version__ = "0.1.0"
