"""Precision gates: similarity, top-k and COCO mAP of an INT8 model against its FP32 reference, thresholds,
and the HTML report.

Pure library code (no Kubernetes). Importing this package is cheap: pycocotools and matplotlib load only
when `bmfleet.gates.detection` or `bmfleet.gates.report` is imported.
"""

from bmfleet.gates.errors import GateInputError

__all__ = ["GateInputError"]
