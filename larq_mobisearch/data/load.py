"""`load_dataset`: from a `DataConfig` to a `Dataset`, choosing the source by ``data.name``."""

from __future__ import annotations

from ..config import DataConfig, validate_data_config
from .dataset import Dataset


def load_dataset(cfg) -> Dataset:
    """Build the `Dataset` described by `cfg` (a `DataConfig`, or a `RunConfig` whose ``data`` is used).

    ``cfg.name``:

    - ``"digits"``: scikit-learn's bundled 1,797 8x8 digits (offline);
    - ``"fashion_mnist"``, ``"mnist"``, ``"idx"``: the four IDX files in ``cfg.data_dir`` (Fashion-MNIST
      defaults to Debian's ``/usr/share/datasets/fashion-mnist``), see `data.idx`;
    - ``"folder"``: ``cfg.data_dir`` holds one sub-folder of images per class;
    - anything else: a TFDS name (``"cifar10"``, ``"imagenette"``, ``"imagenet2012"``, ...) prepared in
      ``cfg.data_dir``.

    # Raises
        ConfigError (ValueError): bad config values (names the key and the received value).
        DatasetNotAvailableError: data not on this machine (files missing, TFDS not prepared, folder missing or
            empty, < 2 classes), with how to get it; `UnknownDatasetError` for unknown names,
            `CorruptDatasetError` for unreadable files. Nothing is ever downloaded.
    """
    if not isinstance(cfg, DataConfig) and isinstance(getattr(cfg, "data", None), DataConfig):
        cfg = cfg.data
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"load_dataset expects a DataConfig (or RunConfig), received {type(cfg).__name__}")
    validate_data_config(cfg)
    key = cfg.name.strip().lower()
    if key == "digits":
        from .arrays import digits_source

        source = digits_source(cfg)
    elif key == "folder":
        from .folder import folder_source

        source = folder_source(cfg)
    elif key in ("fashion_mnist", "mnist", "idx"):
        from .idx import holds_prepared_tfds, idx_source

        if holds_prepared_tfds(cfg):
            from .tfds import tfds_source

            source = tfds_source(cfg)
        else:
            source = idx_source(cfg)
    else:
        from .tfds import tfds_source

        source = tfds_source(cfg)
    return Dataset(source, cfg)
