#!/usr/bin/env python3
"""Parse captured ``lce_benchmark_model`` outputs, or build a device latency table from them.

``mobisearch device ...`` from a checkout, without installing the package::

    export/parse_benchmark.py parse runs/device/rpi4/*.txt
    export/parse_benchmark.py table --manifest models/manifest.json --outputs runs/device/rpi4 \
        --device rpi4 --out rpi4_m3_224.json
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("MOBISEARCH_CLI", "1")  # the CLI's quiet start-up (before TensorFlow loads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from larq_mobisearch.cli import main  # noqa: E402  (imports TensorFlow via larq_mobisearch)

if __name__ == "__main__":
    sys.exit(main(["device", *sys.argv[1:]], prog_name="export/parse_benchmark.py"))
