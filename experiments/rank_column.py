"""Claims 1 and 2 from finished students (no training): LoRA students at several ranks, and full-FT
students, against one reference (the base or control students), by the claims' rules on the mention rate
and on P(trait).

python -m experiments.rank_column --reference runs/ladder/jobs/base-cat-2689e9f6 \
    --students r4=runs/ladder/jobs/student-...-r4-... r64=runs/ladder/jobs/student-...-r64-... \
    r16@0.003=docs/smollm2-135m/ladder-fd3/student-ftcat-distill-r16-t1.result.json --out runs/claim1

The stage: `interp.stages.rank_column.run(cfg)`.
"""

from __future__ import annotations

from pathlib import Path

from interp.loop.config import cli_main, setup_logging
from interp.stages.rank_column import RankColumnConfig, run


def main(cfg: RankColumnConfig) -> Path:
    return run(cfg)


if __name__ == "__main__":
    setup_logging()
    cli_main(main, RankColumnConfig)
