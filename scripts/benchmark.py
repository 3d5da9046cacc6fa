"""Time and peak memory per training iteration of BP, TP(graph), TP(local) and a plain nn.RNN
loop: a thin wrapper around `tpri.analysis.benchmark` (also installed as `tpri-benchmark`).

    python scripts/benchmark.py --T 120 --hidden 100
    python scripts/benchmark.py --help
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tpri first
from tpri.analysis.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
