"""BModelBuild (`bmb`): what to compile, for which chip and shapes, where to run it and how to judge it.

The fields cover every option of the SOPHON SDK's `bmnetu` (the seed's table) and of TPU-MLIR's
`model_transform` / `run_calibration` / `model_deploy`. These models are the single source of truth:
the CRD in `crds/` and in the chart is generated from them (`bmfleet crds`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bmfleet.api.common import QUANTITY_PATTERN, SHA256_PATTERN, ApiModel, Chip, Uri, cel, validations
from bmfleet.api.device import ModelName
from bmfleet.api.rollout import LabelSelector, Strategy
from bmfleet.api.schema_extras import Condition
from bmfleet.api.shapes import SHAPE_STRING_PATTERN, StageShapes, parse_shape_string, validate_shapes

Precision = Literal["FP32", "FP16", "BF16", "INT8"]
ModelFormat = Literal["umodel", "onnx", "caffe", "torchscript", "tflite"]
ToolchainName = Literal["bmnetu", "tpu-mlir"]
Dim = Annotated[int, Field(ge=1, le=1_000_000)]
InputShape = Annotated[list[Dim], Field(min_length=1, max_length=8)]
Label = Annotated[str, Field(max_length=253)]
LabelValue = Annotated[str, Field(max_length=63)]


class Toolchain(ApiModel):
    """The compiler that turns the model into a bmodel, and the image that carries it."""

    name: ToolchainName = Field(
        "tpu-mlir",
        description="bmnetu: SOPHON SDK compiler for UFW umodels (BM1684 only). "
        "tpu-mlir: model_transform, run_calibration and model_deploy (BM1684 and BM1684X).",
    )
    image: str | None = Field(
        None,
        max_length=512,
        pattern=r"^[^\s@]+@sha256:[a-f0-9]{64}$",
        description="Worker image with the toolchain, pinned by digest (repo@sha256:...). "
        "Empty: the operator's configured default for this toolchain.",
    )


class ModelSource(ApiModel):
    """Where the network comes from."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!(self.format in ['umodel', 'caffe']) || has(self.weightsUri)",
                "umodel and caffe models need weightsUri (the .umodel / .caffemodel file)",
                ".weightsUri",
            )
        )
    }

    format: ModelFormat = Field(description="Framework format of the model.")
    uri: Uri = Field(
        description="The model: for umodel the *_int8_unique_top.prototxt (bmnetu -model), for caffe the "
        ".prototxt, otherwise the model file. Schemes: https, http, file, pvc://<claim>/<path>, oci, s3."
    )
    weights_uri: Uri | None = Field(
        None, description="Weights file: the .umodel for bmnetu (-weight) or the .caffemodel for caffe."
    )
    sha256: str | None = Field(None, pattern=SHA256_PATTERN, description="Expected sha256 of the model file.")
    weights_sha256: str | None = Field(None, pattern=SHA256_PATTERN, description="Expected sha256 of the weights file.")


class StageSpec(ApiModel):
    """One stage of the combined bmodel: the shapes of all inputs for one compile (one Job)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("has(self.inputs) != has(self.shape)", "set exactly one of inputs (list form) or shape (string)")
        )
    }

    inputs: Annotated[list[InputShape], Field(min_length=1, max_length=8)] | None = Field(
        None, description="Input shapes in input order, e.g. [[4,3,300,300]]. Every dimension is positive."
    )
    shape: str | None = Field(
        None,
        max_length=512,
        pattern=SHAPE_STRING_PATTERN,
        description="The seed's string form, as bmnetu -shapes takes it: [1,3,300,300],[1,10].",
    )

    def resolved(self) -> StageShapes:
        """The list form, whichever form the user wrote."""
        if self.inputs is not None:
            return validate_shapes([list(s) for s in self.inputs])
        return parse_shape_string(self.shape or "")


class CompileOptions(ApiModel):
    """Compiler options (bmnetu flags; the TPU-MLIR equivalents where they exist)."""

    opt: int = Field(2, ge=0, le=2, description="Optimisation level 0, 1 or 2 (bmnetu -opt).")
    dyn: bool = Field(False, description="Dynamic compilation (bmnetu -dyn; tpu-mlir --dynamic).")
    cmp: bool = Field(
        True,
        description="Compare every layer's result with the reference while compiling "
        "(bmnetu -cmp; tpu-mlir compares against model_transform's reference outputs).",
    )
    mode: Literal["compile", "GenUmodel"] = Field(
        "compile", description="bmnetu -mode: compile to a bmodel, or GenUmodel to only emit a umodel."
    )
    max_n: int | None = Field(
        None, ge=1, le=1024, description="Maximum batch (bmnetu -max_n). Every stage's batch must fit."
    )
    merge_weights: bool = Field(
        False, description="Share identical weights between stages when the per-shape bmodels are combined."
    )
    keep_outputs: bool = Field(
        False,
        description="Keep the whole compiler output directory (reference input/output data, logs) as well as "
        "the bmodel. The output directory itself (bmnetu -outdir) is managed per Job by the worker.",
    )
    timeout_seconds: int = Field(
        3600, ge=60, le=172_800, description="Deadline of one compile Job (activeDeadlineSeconds)."
    )
    retries: int = Field(1, ge=0, le=5, description="Pod retries of one compile Job (backoffLimit).")


class Calibration(ApiModel):
    """INT8 calibration data for TPU-MLIR's run_calibration."""

    dataset_uri: Uri = Field(description="Directory or archive of representative inputs (images or .npz).")
    samples: int = Field(100, ge=1, le=100_000, description="Number of samples used (run_calibration --input_num).")
    sha256: str | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description="Expected digest of the dataset: sha256 of the file, or of a directory's listing "
        "(one `<relative path> <sha256>` line per file, sorted). Without it the operator resolves it first.",
    )


class Preprocess(ApiModel):
    """Input preprocessing that TPU-MLIR's model_transform folds into the model (--mean, --scale, ...)."""

    mean: Annotated[list[float], Field(min_length=1, max_length=4)] | None = Field(
        None, description="Per-channel mean subtracted from the input."
    )
    scale: Annotated[list[float], Field(min_length=1, max_length=4)] | None = Field(
        None, description="Per-channel scale multiplied after the mean."
    )
    pixel_format: Literal["rgb", "bgr", "gray", "rgba"] | None = Field(None, description="Channel order.")
    channel_format: Literal["nchw", "nhwc"] | None = Field(None, description="Input layout.")
    keep_aspect_ratio: bool = Field(False, description="Letterbox instead of stretching when resizing.")


class Toleration(ApiModel):
    """A Kubernetes toleration for the compile pods."""

    key: Label | None = Field(None, description="Taint key; empty with Exists tolerates everything.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: LabelValue | None = Field(None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; empty matches all effects."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute: how long to stay bound.")


Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]


class Resources(ApiModel):
    """CPU and memory for a compile pod (the TPU count is `placement.tpu`)."""

    requests: dict[str, Quantity] = Field(
        default={"cpu": "1", "memory": "2Gi"},
        json_schema_extra={"maxProperties": 8},
        description="Resource requests, e.g. cpu: '2', memory: 4Gi.",
    )
    limits: dict[str, Quantity] = Field(
        default={"memory": "8Gi"},
        json_schema_extra={"maxProperties": 8},
        description="Resource limits.",
    )


class Placement(ApiModel):
    """Where the compile Jobs run. By default on nodes labelled `sophgo.com/chip: <chip>` with one TPU."""

    node_selector: dict[Label, LabelValue] | None = Field(
        None,
        json_schema_extra={"maxProperties": 32},
        description="Extra node labels to match; `sophgo.com/chip` is added from spec.chip and must agree.",
    )
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = Field(
        default_factory=list, description="Tolerations, e.g. for tainted TPU nodes."
    )
    tpu: int = Field(1, ge=0, le=64, description="sophgo.com/tpu devices per compile pod (request = limit).")
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per compile pod.")
    pod_annotations: dict[Label, Annotated[str, Field(max_length=4096)]] | None = Field(
        None, json_schema_extra={"maxProperties": 32}, description="Annotations added to the compile pods."
    )
    priority_class_name: str | None = Field(None, max_length=253, description="PriorityClass of compile pods.")


class GatePreprocess(ApiModel):
    """How dataset images become model inputs: x' = (pixel - mean) * scale, per channel, after resizing."""

    resize: Annotated[list[Annotated[int, Field(ge=1, le=8192)]], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[height, width]; default: the model input's."
    )
    mean: Annotated[list[float], Field(min_length=1, max_length=4)] | None = Field(None, description="Per channel.")
    scale: Annotated[list[float], Field(min_length=1, max_length=4)] | None = Field(None, description="Per channel.")
    channel_order: Literal["rgb", "bgr"] = Field("rgb", description="Channel order the model expects.")
    layout: Literal["nchw", "nhwc"] = Field("nchw", description="Input layout the model expects.")
    letterbox: bool = Field(False, description="Keep the aspect ratio and pad (detection), instead of stretching.")


class SimilarityGate(ApiModel):
    """Every output of the INT8 model against FP32 on the same inputs, as TPU-MLIR's tolerance check."""

    samples: int = Field(8, ge=1, le=10_000, description="Number of inputs compared (from the calibration set).")
    min_cosine: float = Field(0.99, ge=0, le=1, description="Minimum cosine similarity per output (worst sample).")
    min_euclidean_similarity: float | None = Field(
        0.9, ge=0, le=1, description="Minimum TPU-MLIR euclidean similarity, 1 - |a-b| / |(a+b)/2|, per output."
    )
    max_euclidean_distance: float | None = Field(None, ge=0, description="Maximum |int8 - fp32| per output.")
    outputs: Annotated[list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=64)] | None = Field(
        None, description="Only these outputs (default: all)."
    )


class ClassificationGate(ApiModel):
    """Top-k accuracy of the INT8 model against the FP32 model on labelled images."""

    dataset_uri: Uri = Field(description="Directory with labels.txt (`<image path> <label index>` lines) and images.")
    preprocess: GatePreprocess = Field(default_factory=GatePreprocess, description="Image to input tensor.")
    output: str | None = Field(None, max_length=253, description="Output holding class scores (default: the first).")
    topk: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=1, max_length=5)] = Field(
        default=[1, 5], description="Which top-k accuracies to compute."
    )
    max_top1_drop: float = Field(2.0, ge=0, le=100, description="Maximum top-1 drop vs FP32, percentage points.")
    max_top5_drop: float | None = Field(None, ge=0, le=100, description="Maximum top-5 drop, percentage points.")
    min_top1: float | None = Field(None, ge=0, le=100, description="Minimum INT8 top-1 accuracy, percent.")
    min_top5: float | None = Field(None, ge=0, le=100, description="Minimum INT8 top-5 accuracy, percent.")
    limit: int | None = Field(None, ge=1, le=1_000_000, description="Use at most this many images.")


class YoloHead(ApiModel):
    """One YOLOv5-style output: [N, A*(5+C), H/stride, W/stride], per anchor (tx, ty, tw, th, obj, cls...)."""

    output: str = Field(min_length=1, max_length=253, description="Output name.")
    stride: int = Field(ge=1, le=1024, description="Input pixels per grid cell.")
    anchors: Annotated[
        list[Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)]],
        Field(min_length=1, max_length=16),
    ] = Field(description="[width, height] per anchor, in input pixels.")


class Decode(ApiModel):
    """How detections come out of the model."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("self.type != 'yolo' || size(self.heads) > 0", "yolo decoding needs at least one head", ".heads"),
            cel("self.type != 'decoded' || has(self.output)", "decoded detections need the output name", ".output"),
        )
    }

    type: Literal["yolo", "decoded"] = Field(description="yolo: raw heads decoded here; decoded: boxes from the model.")
    heads: Annotated[list[YoloHead], Field(max_length=8)] = Field(default_factory=list, description="For yolo.")
    output: str | None = Field(
        None, max_length=253, description="For decoded: output [N, K, 6] rows x1, y1, x2, y2, score, class index."
    )
    num_classes: int = Field(ge=1, le=100_000, description="Classes the model predicts (index i = i-th category).")


class Nms(ApiModel):
    """Per-class non-maximum suppression after decoding."""

    iou_threshold: float = Field(0.45, ge=0, le=1, description="Boxes overlapping more than this are suppressed.")
    score_threshold: float = Field(0.001, ge=0, le=1, description="Boxes below this score are dropped.")
    max_detections: int = Field(100, ge=1, le=10_000, description="Per image.")


class DetectionGate(ApiModel):
    """COCO mAP of the INT8 model against the FP32 model (pycocotools)."""

    annotations_uri: Uri = Field(description="COCO-format annotations (categories in model class order).")
    images_uri: Uri = Field(description="Directory of the images the annotations name (file_name).")
    preprocess: GatePreprocess = Field(default_factory=GatePreprocess, description="Image to input tensor.")
    decode: Decode = Field(description="How to read detections from the outputs.")
    nms: Nms = Field(default_factory=Nms, description="Non-maximum suppression.")
    max_map_drop: float = Field(4.0, ge=0, le=100, description="Maximum mAP@0.5:0.95 drop, percentage points.")
    max_map50_drop: float | None = Field(4.0, ge=0, le=100, description="Maximum mAP@0.5 drop, percentage points.")
    min_map: float | None = Field(None, ge=0, le=100, description="Minimum INT8 mAP@0.5:0.95, percent.")
    limit: int | None = Field(None, ge=1, le=1_000_000, description="Use at most this many images.")


class Gates(ApiModel):
    """Precision gates run on the combined model (on the device runtime, else TPU-MLIR's simulator) against
    the FP32 source model on onnxruntime. A failed gate stops the build: Ready=False, reason GateFailed."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.similarity) || has(self.classification) || has(self.detection)",
                "gates needs at least one of similarity, classification, detection",
            )
        )
    }

    similarity: SimilarityGate | None = Field(None, description="Tensor similarity gate.")
    classification: ClassificationGate | None = Field(None, description="Classification top-k gate.")
    detection: DetectionGate | None = Field(None, description="Detection mAP gate.")
    timeout_seconds: int = Field(3600, ge=60, le=7 * 86400, description="Deadline of the gate Job.")


_STORE_URI_FORMS = (("oci", "oci://<host>/<repo>"), ("s3", "s3://<bucket>/<prefix>"), ("pvc", "pvc://<claim>/<path>"))


class StoreRef(ApiModel):
    """Artifact store for the compiled stages, the combined bmodel, the gate report and the compile cache: an OCI
    registry (blobs by digest), an S3-compatible bucket or a PersistentVolumeClaim. Blobs are addressed by digest,
    so builds with the same inputs and store share them."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            *(
                cel(f"self.type != '{t}' || self.uri.startsWith('{t}://')", f"a store of type {t} needs {form}", ".uri")
                for t, form in _STORE_URI_FORMS
            ),
            cel(
                "self.type != 'pvc' || !has(self.credentialsSecret)",
                "a pvc store takes no credentials",
                ".credentialsSecret",
            ),
        )
    }

    type: Literal["oci", "s3", "pvc"] = Field("oci", description="Store backend.")
    uri: Uri = Field(
        description="Repository (oci://host[:port]/repo), bucket and key prefix (s3://bucket/prefix, optionally "
        "?endpoint=https://...&region=...) or pvc://claim/path."
    )
    credentials_secret: str | None = Field(
        None,
        max_length=253,
        description="Secret in the build's namespace, mounted read-only into the steps that use the store: "
        "`.dockerconfigjson` (or username/password) for oci; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (optional "
        "AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL) for s3; optional `ca.crt` for a store with a private CA.",
    )


class Output(ApiModel):
    """Where the compiled stages and the combined bmodel go; a build with a store is also combined and cached."""

    store: StoreRef | None = Field(None, description="Artifact store; empty: the operator's default store.")
    name: str | None = Field(None, max_length=253, description="Artifact name; default <netName>.bmodel.")


class PublishRollout(ApiModel):
    """The BModelRollout the build creates (owned by the build) or updates once it is Ready."""

    name: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of the BModelRollout; default: the build's name.",
    )
    model_name: ModelName = Field(description="Name of the model on the devices.")
    selector: LabelSelector = Field(description="EdgeDevices (same namespace) to roll out to, by label.")
    strategy: Strategy = Field(default_factory=Strategy, description="Phases, in-flight limit, timeouts, abort.")


class PublishRegistry(ApiModel):
    """The OCI registry the verified bmodel is pushed to, with its gate report, gate result and provenance, as
    one ORAS-compatible artifact (`oras pull` gets the files by name); addressed by digest, the tag is a convenience."""

    uri: str = Field(
        pattern=r"^oci://[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9]+([._/-][a-z0-9]+)*$",
        max_length=512,
        description="oci://<registry host[:port]>/<repository>.",
    )
    tag: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$", description="Tag the artifact too (default: none)."
    )
    credentials_secret: str | None = Field(
        None, max_length=253, description="Secret (kubernetes.io/dockerconfigjson) with the registry credentials."
    )


class Publish(ApiModel):
    """Publish the combined bmodel once the build is Ready (gates passed; combined when it has no gates): push it
    to an OCI registry and/or roll it out."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("has(self.rollout) || has(self.registry)", "publish needs a registry, a rollout, or both")
        )
    }

    registry: PublishRegistry | None = Field(None, description="Push the artifact to this OCI registry.")
    rollout: PublishRollout | None = Field(
        None, description="The rollout to create or update with artifact.build = this build."
    )


_SPEC_RULES = validations(
    cel(
        "self.toolchain.name != 'bmnetu' || self.model.format == 'umodel'",
        "bmnetu compiles UFW umodels only: set model.format to umodel, or use toolchain tpu-mlir",
        ".model.format",
    ),
    cel(
        "self.toolchain.name != 'tpu-mlir' || self.model.format != 'umodel'",
        "tpu-mlir cannot read UFW umodels: use toolchain bmnetu, or give an onnx/caffe/torchscript/tflite model",
        ".model.format",
    ),
    cel(
        "self.toolchain.name != 'bmnetu' || self.chip == 'BM1684'",
        "bmnetu targets BM1684 only: use toolchain tpu-mlir for BM1684X",
        ".chip",
    ),
    cel(
        "self.toolchain.name != 'bmnetu' || self.precision in ['FP32', 'INT8']",
        "bmnetu supports precision FP32 or INT8 only (its -prec flag)",
        ".precision",
    ),
    cel(
        "self.chip != 'BM1684' || self.precision in ['FP32', 'INT8']",
        "BM1684 has no FP16/BF16 units: use FP32 or INT8, or target BM1684X",
        ".precision",
    ),
    cel(
        "self.toolchain.name != 'tpu-mlir' || self.precision != 'INT8' || has(self.calibration)",
        "INT8 with tpu-mlir needs calibration (a dataset for run_calibration)",
        ".calibration",
    ),
    cel(
        "!has(self.publish) || (has(self.output) && has(self.output.store))",
        "publish rolls out the combined bmodel: set spec.output.store",
        ".publish",
    ),
    cel(
        "self.compile.mode == 'compile' || self.toolchain.name == 'bmnetu'",
        "compile.mode GenUmodel exists only for bmnetu",
        ".compile.mode",
    ),
    cel(
        "!has(self.compile.maxN) || self.shapes.all(s, !has(s.inputs) || s.inputs[0][0] <= self.compile.maxN)",
        "a stage's batch (first dimension of its first input) exceeds compile.maxN",
        ".compile.maxN",
    ),
    cel(
        "!has(self.placement.nodeSelector) || !('sophgo.com/chip' in self.placement.nodeSelector) || "
        "self.placement.nodeSelector['sophgo.com/chip'] == self.chip.lowerAscii()",
        "placement.nodeSelector['sophgo.com/chip'] must match chip (lower case), or be left out",
        ".placement.nodeSelector",
    ),
)


class BModelBuildSpec(ApiModel):
    """What to compile, for which chip and shapes, where to compile it and how to judge it."""

    model_config = ApiModel.model_config | {"json_schema_extra": _SPEC_RULES}

    toolchain: Toolchain = Field(default_factory=Toolchain, description="Compiler and its image.")
    model: ModelSource = Field(description="The network to compile.")
    chip: Chip = Field("BM1684", description="Target SOPHON chip (bmnetu -target; tpu-mlir --chip).")
    precision: Precision = Field(
        "FP32", description="Precision of the compiled model (bmnetu -prec; tpu-mlir --quantize)."
    )
    net_name: str | None = Field(
        None,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$",
        description="Network name inside the bmodel (bmnetu -net_name). Default: from the model.",
    )
    shapes: Annotated[list[StageSpec], Field(min_length=1, max_length=16)] = Field(
        description="One entry per stage of the combined bmodel (one compile Job each), e.g. batch 4 and batch 1."
    )
    compile: CompileOptions = Field(default_factory=CompileOptions, description="Compiler options.")
    calibration: Calibration | None = Field(None, description="INT8 calibration data (tpu-mlir).")
    preprocess: Preprocess | None = Field(None, description="Input preprocessing folded into the model (tpu-mlir).")
    placement: Placement = Field(default_factory=Placement, description="Where the compile Jobs run.")
    gates: Gates | None = Field(None, description="Precision gates.")
    output: Output | None = Field(None, description="Where the combined bmodel is stored.")
    publish: Publish | None = Field(None, description="Optional rollout of the verified bmodel.")


ShapeState = Literal["Pending", "Running", "Succeeded", "Failed"]
Phase = Literal[
    "Pending", "Compiling", "Compiled", "Combining", "Combined", "Gating", "Verified", "GateFailed", "Failed", "Stalled"
]


class ShapeStatus(ApiModel):
    """Progress of one stage's compile."""

    index: int = Field(ge=0, description="Position in spec.shapes.")
    inputs: list[list[int]] = Field(description="Normalised input shapes of this stage.")
    shape: str = Field(description="The same shapes in the seed's string form.")
    job: str | None = Field(None, description="Name of the compile Job.")
    state: ShapeState = Field(description="Pending, Running, Succeeded or Failed.")
    start_time: str | None = Field(None, description="When the Job started (RFC 3339).")
    completion_time: str | None = Field(None, description="When the Job finished (RFC 3339).")
    seconds: float | None = Field(None, description="Wall time of the compile.")
    digest: str | None = Field(None, description="sha256 of the compiled bmodel, as the worker reported it.")
    size: int | None = Field(None, ge=0, description="Size of the compiled bmodel in bytes.")
    toolchain: str | None = Field(None, description="Toolchain and version that compiled it.")
    uri: str | None = Field(None, description="Where the compiled bmodel is stored.")
    cache_key: str | None = Field(None, description="Compile-cache key: inputs, toolchain, options, shape, chip.")
    cache_hit: bool | None = Field(None, description="True when the cache had this stage and no Job ran.")
    reason: str | None = Field(None, description="Why the compile failed, machine-readable.")
    message: str | None = Field(None, max_length=4096, description="Why the compile failed, for people.")


class CombineStatus(ApiModel):
    """The combine step: the per-shape bmodels merged into one (runs when the build has a store)."""

    job: str | None = Field(None, description="Name of the combine Job.")
    state: ShapeState = Field(description="Pending, Running, Succeeded or Failed.")
    start_time: str | None = Field(None, description="When the Job started (RFC 3339).")
    completion_time: str | None = Field(None, description="When the Job finished (RFC 3339).")
    seconds: float | None = Field(None, description="Wall time of the combine.")
    uri: str | None = Field(None, description="Where the combined bmodel is stored.")
    digest: str | None = Field(None, description="sha256 of the combined bmodel.")
    size: int | None = Field(None, ge=0, description="Size of the combined bmodel in bytes.")
    stages: int | None = Field(None, ge=0, description="Stages in the combined bmodel.")
    cache_key: str | None = Field(None, description="Cache key of the combine: its inputs and output name.")
    cache_hit: bool | None = Field(None, description="True when the same inputs were combined before.")
    reason: str | None = Field(None, description="Why the combine failed, machine-readable.")
    message: str | None = Field(None, max_length=4096, description="Why the combine failed, for people.")


class InputsStatus(ApiModel):
    """The resolve step: the content digests of the inputs, which the compile cache keys on."""

    job: str | None = Field(None, description="Name of the resolve Job (none when every digest is declared).")
    state: ShapeState = Field(description="Pending, Running, Succeeded or Failed.")
    uris: str | None = Field(None, description="Hash of the input URIs these digests were resolved for.")
    digests: dict[str, str] | None = Field(None, description="sha256 per input: model, weights, calibration.")
    reason: str | None = Field(None, description="Why resolving failed, machine-readable.")
    message: str | None = Field(None, max_length=4096, description="Why resolving failed, for people.")


class GateCheckStatus(ApiModel):
    """One metric held against one threshold."""

    gate: str = Field(description="similarity, classification or detection.")
    metric: str = Field(description="e.g. top-1 accuracy, mAP@[.50:.95], cosine (output).")
    value: float | None = Field(None, description="The INT8 model's value (percent for accuracies and mAP).")
    baseline: float | None = Field(None, description="The FP32 model's value.")
    delta_pp: float | None = Field(None, description="value - baseline, percentage points.")
    threshold: float = Field(description="The limit the rule applies.")
    rule: str = Field(description="max_drop, min or max.")
    passed: bool = Field(description="Whether this check passed.")


class GatesStatus(ApiModel):
    """The gate step: the verdict, each metric with its FP32 baseline, delta and threshold, and the report."""

    job: str | None = Field(None, description="Name of the gate Job.")
    state: ShapeState = Field(description="Pending, Running, Succeeded (the gates ran) or Failed (could not run).")
    passed: bool | None = Field(None, description="Whether every check passed.")
    summary: str | None = Field(None, max_length=4096, description="The verdict in words.")
    checks: list[GateCheckStatus] = Field(default_factory=list, description="Every check.")
    report_uri: str | None = Field(None, description="The HTML report, stored beside the artifact.")
    result_uri: str | None = Field(None, description="The JSON result (all metrics, per-class AP).")
    seconds: float | None = Field(None, description="Wall time of the gate run.")
    reason: str | None = Field(None, description="Why the gates could not run, machine-readable.")
    message: str | None = Field(None, max_length=4096, description="Why the gates could not run, for people.")


class PublishStatus(ApiModel):
    """The publish step: the artifact in the OCI registry."""

    job: str | None = Field(None, description="Name of the publish Job.")
    state: ShapeState = Field(description="Pending, Running, Succeeded or Failed.")
    manifest: str | None = Field(None, description="Digest of the artifact's manifest (sha256:...).")
    uri: str | None = Field(None, description="The bmodel blob: oci://<registry>/<repository>@sha256:<digest>.")
    reason: str | None = Field(None, description="Why publishing failed, machine-readable.")
    message: str | None = Field(None, max_length=4096, description="Why publishing failed, for people.")


class BModelBuildStatus(ApiModel):
    """Observed state; kstatus-compatible (observedGeneration, Ready/Reconciling/Stalled)."""

    observed_generation: int | None = Field(None, description="Generation of the spec this status describes.")
    phase: Phase | None = Field(
        None, description="Summary for people: Pending, Compiling, Compiled, Combining, Combined, Failed, Stalled."
    )
    shapes_ready: str | None = Field(None, description="Compiled stages out of all stages, e.g. 2/2.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled, Compiled (and later Combined, GatesPassed, Published).",
    )
    shapes: list[ShapeStatus] = Field(default_factory=list, description="One entry per stage.")
    inputs: InputsStatus | None = Field(None, description="Resolved input digests, when the build has a store.")
    combine: CombineStatus | None = Field(None, description="The combine step, when the build has a store.")
    gates: GatesStatus | None = Field(None, description="The gate step, when the build has gates.")
    publish: PublishStatus | None = Field(None, description="The publish step, when spec.publish.registry is set.")
