"""One tree of settings configures every stage; the CLI builds it, the library reads it.

`RunConfig` (sections `data`, `model`, `supernet`, `search`, `retrain`, `teacher`, `export`, `distribute`;
`schema`)
is built by `load_config(path, preset, overrides)` (`loading`):

1. start from a preset (`presets.PRESETS`: ``digits`` (default, offline), ``fashion``, ``fashion_react``, ``cifar10``,
   ``imagenet``), or from a saved config (``base=``, e.g. a run directory's);
2. merge a JSON or YAML file (may be partial and nested, e.g. ``{"search": {"population": 20}}``);
3. apply ``key=value`` overrides with dotted keys (``search.population=20``, ``search.flops_budget=null``);
4. fill ``search.flops_budget`` from the preset's per-module budget, unless the file or an override set it;
5. validate the whole tree with pydantic.

Every error is a `ConfigError` (a `ValueError`) naming the dotted key, the value received and what is
allowed (`errors`).
"""

from .errors import ConfigError  # noqa: F401
from .loading import (  # noqa: F401
    apply_overrides,
    canonical_json,
    config_from_dict,
    config_hash,
    config_to_dict,
    load_config,
    merge_tree,
    parse_override,
    preset_config,
    read_config_file,
    save_config,
    validate_config,
    validate_data_config,
)
from .presets import (  # noqa: F401
    DEFAULT_PRESET,
    IMAGENET_FLOPS_BUDGETS,
    PAPER_FLOPS_BUDGETS,
    PRESETS,
    Preset,
    default_flops_budget,
    get_preset,
)
from .schema import (  # noqa: F401
    MAX_SEED,
    MIN_IMAGE_SIZE,
    SECTIONS,
    DataConfig,
    DistributeConfig,
    ExportConfig,
    ModelConfig,
    RetrainConfig,
    RunConfig,
    SearchConfig,
    SupernetConfig,
    TeacherConfig,
    TrainConfig,
    valid_keys,
)
