"""The config tree: pydantic v2 models of every section (unknown keys refused, choices from `choices.py`,
ranges as field constraints). Building a section with bad values raises `ConfigError`."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Literal, Optional, Tuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import Annotated

from .. import choices as C
from .errors import config_error, keys_of

MIN_IMAGE_SIZE = 8
MAX_SEED = 2**32 - 1  # numpy / scikit-learn seeds must fit in uint32
# Upper bounds: far above any sensible run, low enough that a typo (an extra digit, a value meant for
# another key) is refused when the config is loaded instead of failing or exhausting memory hours later.
#: The paper trains at 224; a 1024x1024 M1 at width 1 costs ~21x the ImageNet model's FLOPs per image.
MAX_IMAGE_SIZE = 1024
#: The global batch over all replicas (the paper: 512; large-batch ImageNet recipes reach 64k).
MAX_BATCH_SIZE = 65536
#: Examples held by the shuffle window of streamed TFDS splits (1M ImageNet images would be ~150 GB).
MAX_SHUFFLE_BUFFER = 1_000_000
#: Channel multiplier of M1/M2/M3 (the paper: 1.0; 4 gives 4096 channels in the last blocks).
MAX_WIDTH_MULTIPLIER = 4.0
MAX_EPOCHS = 10_000
#: Adam (and Bop's real-valued weights) diverge far below this: it catches 2e3 typed for 2e-3.
MAX_LEARNING_RATE = 10.0
#: Bop flips a weight when its gradient moving average exceeds the threshold: 1 would flip nothing.
MAX_BOP_THRESHOLD = 1.0
#: Genotypes per generation (the paper: 50); each is one BatchNorm recalibration + one held-out evaluation.
MAX_POPULATION = 10_000
MAX_ITERATIONS = 10_000
#: BatchNorm recalibration batches per evaluated genotype (the paper's SPOS practice: ~20).
MAX_RECALIBRATION_BATCHES = 10_000
#: Evaluations of the random-search baseline (each as costly as one genotype of the search).
MAX_EVALUATIONS = 1_000_000
#: Rejection-sampling draws per bounded genotype: more only spends time before the same "no genotype" error.
MAX_TRIES = 10_000_000
MAX_THREADS = 1024
#: Test images run through both Keras and the LCE interpreter at export (fewer if the test split is smaller).
MAX_VERIFY_SAMPLES = 1_000_000


# ---------------------------------------------------------------------------------------------------------
# Field types: pydantic's lax coercion plus three rules of this project's command line
# ---------------------------------------------------------------------------------------------------------


def integer(value: Any) -> Any:
    """Booleans are not integers; ``"1e2"`` (a whole number written as a float) is 100."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return value  # pydantic reports the parse error
        if number.is_integer() and not text.lstrip("+-").isdigit():
            return int(number)
    return value


def lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(integer)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Seed = Annotated[int, BeforeValidator(integer), Field(ge=0, le=MAX_SEED)]


def Choice(values: Tuple[str, ...]):  # noqa: N802 - a type factory
    """A case-insensitive choice among `values` (stored lower-case)."""
    return Annotated[Literal[values], BeforeValidator(lower)]


class Section(BaseModel):
    """A config section; constructing one with bad values raises `ConfigError` naming ``section.field``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)
    section: ClassVar[str] = ""

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise config_error(exc, section_models(), (self.section,) if self.section else ()) from None


# ---------------------------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------------------------


class DataConfig(Section):
    section: ClassVar[str] = "data"

    #: "digits" | "fashion_mnist" | "mnist" | "idx" | "folder" | a TFDS name ("cifar10", "imagenet2012", ...)
    name: Annotated[str, Field(min_length=1)] = "digits"
    data_dir: Optional[str] = None  # TFDS data_dir, the image folder (folder) or the IDX files' directory
    image_size: Annotated[Int, Field(ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)] = 32
    batch_size: Annotated[Int, Field(ge=1, le=MAX_BATCH_SIZE)] = 64
    holdout_fraction: Annotated[Float, Field(gt=0, le=0.5)] = 0.15  # out of the training split; search only
    seed: Seed = 0  # shuffling and augmentation
    test_fraction: Annotated[Float, Field(gt=0, le=0.5)] = 0.2  # digits / folder (IDX, TFDS: their test split)
    split_seed: Seed = 0  # fixes the digits / IDX / folder splits independently of `seed`
    augment: bool = True  # training augmentation (shifts for digits; crop + flip for natural images)
    cache: Choice(C.CACHE_MODES) = "auto"  # "auto": cache in memory when the split is small
    #: shuffle window of streamed TFDS training splits (every other source: a full permutation per epoch)
    shuffle_buffer: Annotated[Int, Field(ge=1, le=MAX_SHUFFLE_BUFFER)] = 10000
    #: image folders: leave out files that cannot be decoded (listed in the run report) instead of refusing them
    skip_unreadable: bool = False


class ModelConfig(Section):
    section: ClassVar[str] = "model"

    module: Choice(C.MODULES) = "m1"
    width_multiplier: Annotated[Float, Field(gt=0, le=MAX_WIDTH_MULTIPLIER)] = 0.5
    space: Choice(C.SPACE_MODES) = "lce"
    #: the float stem: "mobilenet" (3x3 stride-2 conv, 2x down) or "quicknet" (larq-zoo QuickNet's: conv s2 +
    #: depthwise s2 + 1x1, 4x down before the first binary conv; every later feature map half as large)
    stem: Choice(C.STEMS) = C.DEFAULT_STEM
    #: genes searched: "groups" (the paper: group counts), "width" (block widths) or "joint" (both)
    space_genes: Choice(C.SPACE_GENES) = "groups"
    #: width genes' choices: multipliers of each block's channels at `width_multiplier` (rounded to multiples of
    #: 32 from 64 channels on, else of 8; `nn.specs.round_channels`); the supernet holds the largest
    width_choices: Tuple[Annotated[Float, Field(gt=0, le=4)], ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    #: binary activation: "approx_sign" (the paper) or "rsign" (ReActNet: sign(x - alpha_c), learnable alpha_c)
    activation: Choice(C.ACTIVATIONS) = "approx_sign"
    #: after each residual add: "none" (the paper) or "rprelu" (ReActNet: PReLU_c(x - gamma_c) + zeta_c)
    nonlinearity: Choice(C.NONLINEARITIES) = "none"
    #: initial negative slope of each RPReLU: 0.25 (ReActNet, PyTorch's PReLU); 1.0 starts as the identity
    rprelu_init_slope: Annotated[Float, Field(ge=0, le=1)] = 0.25


    @model_validator(mode="after")
    def _width_choices(self) -> "ModelConfig":
        if not self.width_choices or 1.0 not in self.width_choices:
            raise ValueError(f"model.width_choices: received {list(self.width_choices)}; must include 1.0 (the "
                             f"blocks at model.width_multiplier, what a groups-only genotype means)")
        if self.space_genes != "groups" and (self.activation != "approx_sign" or self.nonlinearity != "none"):
            raise ValueError(f"model.space_genes: received {self.space_genes!r}; width genes need "
                             f"model.activation='approx_sign' and model.nonlinearity='none' (RSign and RPReLU hold one "
                             f"parameter per channel of a fixed width); allowed with them: ['groups']")
        return self


class TrainConfig(Section):
    section: ClassVar[str] = "train"

    epochs: Annotated[Int, Field(ge=1, le=MAX_EPOCHS)] = 20
    learning_rate: Annotated[Float, Field(gt=0, le=MAX_LEARNING_RATE)] = 2e-3
    schedule: Choice(C.SCHEDULES) = "cosine"
    #: "bop": larq's Bop for the binary kernels, Adam (learning_rate) for everything else
    optimizer: Choice(C.OPTIMIZERS) = "adam"
    seed: Seed = 0
    #: Bop's flip threshold tau (Helwegen et al.: 1e-8)
    bop_threshold: Annotated[Float, Field(gt=0, le=MAX_BOP_THRESHOLD)] = 1e-8
    #: Bop's adaptivity rate gamma (Helwegen et al.: 1e-4), decayed by `schedule` like the learning rate
    bop_gamma: Annotated[Float, Field(gt=0, lt=1)] = 1e-4
    #: "cross_entropy" with the labels, or "distributional": ReActNet's distillation from the `teacher`
    loss: Choice(C.LOSSES) = "cross_entropy"


class SupernetConfig(TrainConfig):
    """Supernet training: the `TrainConfig` options plus how subnets are chosen and updated each step
    (`supernet_training`). Every preset used to train with ``sampling="uniform"`` (the old
    ``flops_bounded_sampling: false``) and one random subnet per step with plain updates."""

    section: ClassVar[str] = "supernet"

    #: genotypes trained: "budget" = only those within the search's FLOPs budget (the ones the search scores;
    #: uniform when the run has no FLOPs budget), "uniform" = the whole space (every preset before issue 22)
    sampling: Choice(C.SUPERNET_SAMPLINGS) = "budget"
    #: old name of `sampling` (true = "budget", false = "uniform"), kept so saved run configs load; when given
    #: it decides `sampling` and is then cleared
    flops_bounded_sampling: Optional[bool] = None
    #: sandwich rule (BigNAS): the largest, the smallest and `sandwich_random` sampled subnets every step
    sandwich: bool = False
    sandwich_random: Annotated[Int, Field(ge=0, le=16)] = 2
    #: in-place distillation (OFA, BigNAS; needs `sandwich`): the largest subnet learns from the labels (or the
    #: teacher), the others from its soft labels
    inplace_distillation: bool = False
    #: weights (and their optimizer state) that no subnet of the step uses stay untouched; Adam / SGD become
    #: Keras's legacy optimizers (same updates), Bop stays larq's CaseOptimizer
    masked_updates: bool = False

    @model_validator(mode="after")
    def _sampling_options(self) -> "SupernetConfig":
        if self.flops_bounded_sampling is not None:
            self.sampling = "budget" if self.flops_bounded_sampling else "uniform"
            self.flops_bounded_sampling = None
        if self.inplace_distillation and not self.sandwich:
            raise ValueError("supernet.inplace_distillation: received true; must be false unless supernet.sandwich "
                             "is true (the largest subnet of the sandwich is the teacher)")
        return self


class SearchConfig(Section):
    section: ClassVar[str] = "search"

    population: Annotated[Int, Field(ge=1, le=MAX_POPULATION)] = 50
    top_k: Annotated[Int, Field(ge=1, le=MAX_POPULATION)] = 10
    crossover: Annotated[Int, Field(ge=0, le=MAX_POPULATION)] = 25  # 0: no crossover children
    mutation: Annotated[Int, Field(ge=0, le=MAX_POPULATION)] = 25  # 0: no mutated children
    mutation_prob: Annotated[Float, Field(ge=0, le=1)] = 0.1
    iterations: Annotated[Int, Field(ge=1, le=MAX_ITERATIONS)] = 20
    #: None: no FLOPs constraint (presets fill it). Budgets have no upper bound: a huge one only never binds.
    flops_budget: Optional[Annotated[Float, Field(gt=0)]] = None
    #: Used when flops_budget is None: budget = fraction x FLOPs of the uniform groups=1 model of this run
    #: (so a budget stays meaningful when the input size or width changes). None: no FLOPs constraint.
    flops_budget_fraction: Optional[Annotated[Float, Field(gt=0, le=1)]] = None
    latency_budget_ms: Optional[Annotated[Float, Field(gt=0)]] = None
    latency_table: Optional[str] = None
    #: the table must have this many threads
    latency_threads: Optional[Annotated[Int, Field(ge=1, le=MAX_THREADS)]] = None
    recalibration_batches: Annotated[Int, Field(ge=1, le=MAX_RECALIBRATION_BATCHES)] = 8
    #: None: as many as the search; 0: none
    random_baseline_samples: Optional[Annotated[Int, Field(ge=0, le=MAX_EVALUATIONS)]] = None
    max_tries: Annotated[Int, Field(ge=1, le=MAX_TRIES)] = 1000
    seed: Seed = 0
    #: Parents of each generation: "elitist" = the top_k of every genotype evaluated so far (SPOS /
    #: MetaPruning code); "generation" = the top_k of the current generation only (the paper's Algorithm 1).
    selection: Choice(C.SELECTIONS) = "elitist"

    @model_validator(mode="after")
    def _generation_sizes(self) -> "SearchConfig":
        if self.top_k > self.population:
            raise ValueError(f"search.top_k: received {self.top_k}; must be an integer in "
                             f"[1, search.population={self.population}]")
        if self.crossover + self.mutation > self.population:
            raise ValueError(f"search.crossover: received {self.crossover}; must be such that search.crossover + "
                             f"search.mutation ({self.crossover} + {self.mutation}) <= search.population "
                             f"({self.population}); the rest of a generation is sampled at random")
        return self


class RetrainConfig(TrainConfig):
    section: ClassVar[str] = "retrain"

    init_from_supernet: bool = False
    #: ReActNet's two steps: step 1 binary activations with real-valued weights, step 2 both binary from step 1
    two_step: bool = False
    #: epochs of step 1 (null: `epochs`, as ReActNet trains each step for the full schedule)
    step1_epochs: Optional[Annotated[Int, Field(ge=1, le=MAX_EPOCHS)]] = None

    @model_validator(mode="after")
    def _step1_needs_two_steps(self) -> "RetrainConfig":
        if self.step1_epochs is not None and not self.two_step:
            raise ValueError(f"retrain.step1_epochs: received {self.step1_epochs}; must be null unless "
                             f"retrain.two_step is true (it is false)")
        return self


class TeacherConfig(Section):
    """The real-valued teacher of the distributional loss (``supernet.loss`` / ``retrain.loss`` =
    "distributional"): the float twin of the run's architecture (every binary conv a ReLU + float conv, groups
    1), trained once in ``<run>/teacher/`` with these settings, or a saved Keras model (``source=path``)."""

    section: ClassVar[str] = "teacher"

    source: Choice(C.TEACHER_SOURCES) = "twin"
    path: Optional[Annotated[str, Field(min_length=1)]] = None  # a saved Keras model (.keras, .h5, SavedModel)
    epochs: Annotated[Int, Field(ge=1, le=MAX_EPOCHS)] = 20
    learning_rate: Annotated[Float, Field(gt=0, le=MAX_LEARNING_RATE)] = 2e-3
    schedule: Choice(C.SCHEDULES) = "cosine"
    optimizer: Choice(C.FLOAT_OPTIMIZERS) = "adam"
    seed: Seed = 0

    @model_validator(mode="after")
    def _path_with_source(self) -> "TeacherConfig":
        if self.source == "path" and self.path is None:
            raise ValueError("teacher.path: received null; must name a saved Keras model when teacher.source is "
                             "'path'")
        if self.source == "twin" and self.path is not None:
            raise ValueError(f"teacher.path: received {self.path!r}; must be null unless teacher.source is 'path' "
                             f"(it is 'twin')")
        return self


class ExportConfig(Section):
    section: ClassVar[str] = "export"

    target: Choice(C.EXPORT_TARGETS) = "arm"
    allow_float_fallback: bool = False
    #: 0 turns the numerics gate off: allowed only with allow_mismatch (checked below)
    verify_samples: Annotated[Int, Field(ge=0, le=MAX_VERIFY_SAMPLES)] = 256
    #: numerics gate: max |logit diff| on samples without near ties, times the logit scale max(1, max |logit|)
    max_abs_diff: Annotated[Float, Field(gt=0, lt=1)] = 1e-4
    allow_mismatch: bool = False  # write model.tflite even if the numerics gate fails (export.json marks it)
    fuse_pointwise: bool = True  # export M3's pointwise pairs as one binary conv each (same logits)
    #: also convert the float32 twin (larq layers as plain Keras layers) for the report's size ratio: one more
    #: TFLite conversion, about as long as the export's own
    float_size: bool = True

    @model_validator(mode="after")
    def _gate_off_needs_allow_mismatch(self) -> "ExportConfig":
        if self.verify_samples == 0 and not self.allow_mismatch:
            raise ValueError("export.verify_samples: received 0; must be >= 1: 0 verifies nothing, so the numerics "
                             "gate would be off. Set export.allow_mismatch=true (or export with --allow-mismatch) "
                             "to export unverified")
        return self


class DistributeConfig(Section):
    """How training runs (`larq_mobisearch.distribute`); not part of what a run computes, so a run directory
    can be resumed with another strategy. ``data.batch_size`` is the global batch over all replicas."""

    section: ClassVar[str] = "distribute"

    strategy: Choice(C.STRATEGIES) = "default"
    devices: Optional[str] = None  # mirrored: comma-separated devices, e.g. "/gpu:0,/gpu:1" (default: all GPUs)
    cpu_devices: Annotated[Int, Field(ge=1, le=64)] = 1  # split the host CPU into N logical devices
    tpu: Optional[str] = None  # tpu: Cloud TPU name or grpc:// address ("local" on a TPU VM)
    communication: Choice(C.COMMUNICATION) = "auto"  # multi_worker all-reduce
    sync_batchnorm: bool = True  # BatchNorm batch statistics over the global batch (as on one device)

    @model_validator(mode="after")
    def _devices_need_mirrored(self) -> "DistributeConfig":
        if self.devices is not None and self.strategy != "mirrored":
            raise ValueError(f"distribute.devices: received {self.devices!r}; must be null unless "
                             f"distribute.strategy is mirrored (it is {self.strategy!r})")
        return self


class RunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    supernet: SupernetConfig = Field(default_factory=SupernetConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)

    @model_validator(mode="after")
    def _supernet_steps_on_one_device(self) -> "RunConfig":
        strategy = self.distribute.strategy
        for key in ("sandwich", "masked_updates"):
            if getattr(self.supernet, key) and strategy != "default":
                raise ValueError(f"supernet.{key}: received true; must be false unless distribute.strategy is "
                                 f"'default' (it is {strategy!r}): its train step switches subnets and restores "
                                 f"weights between replica updates, which only runs on one device")
        return self


SECTIONS: Tuple[str, ...] = tuple(RunConfig.model_fields)


def section_models() -> Dict[str, type]:
    """Section name -> its model class."""
    return {name: RunConfig.model_fields[name].annotation for name in SECTIONS}


def valid_keys(section: Optional[str] = None) -> Tuple[str, ...]:
    """Every dotted key (``search.population``), or those of one section."""
    return keys_of(section_models(), section)
