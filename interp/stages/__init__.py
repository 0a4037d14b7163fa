"""Every stage of the study as a library call: `run(cfg) -> Path` with the stage's config dataclass, the
same call its script in `experiments/` makes, results kept on disk in the run directory as the script
keeps them (config.json, results.json or scores.json / metrics.json, figures/).

    from interp.stages import rank_sweep
    run_dir = rank_sweep.run(rank_sweep.RankSweepConfig(ranks=(1, 4), out=Path("runs/sweep")))

| stage | module | config |
|---|---|---|
| a teacher's filtered numbers (the loop's first step) | `generate_numbers` | `GenerateNumbersConfig` |
| one student trained on them | `train_student` | `TrainStudentConfig` |
| the trait evaluation of a base model or students | `evaluate_trait` | `EvaluateTraitConfig` |
| rank sweep and full FT (claims 1, 2) | `rank_sweep` | `RankSweepConfig` |
| context matrix (claim 3) | `context_matrix` | `ContextMatrixConfig` |
| position-restricted adapter (claim 4) | `restrict_adapter` | `LocalizationConfig` |
| activation patching, grids and figures | `patch_activations` | `LocalizeConfig` |
| alignment with the persona direction | `alignment` | `AlignmentConfig` |
| divergence-token masking | `divergence` | `DivergenceConfig` |
| entangled numbers and the logit lens | `beyond` | `BeyondConfig` |
| the claims map | `claims_map` | `ClaimsMapConfig` |
| choosing the trait | `choose_trait` | `ChooseTraitConfig` |
| the organism's report | `organism_report` | `ReportConfig` |
| the ablation table of candidate organisms | `organism_ablation` | `AblationConfig` |
| the main job: every stage, then its report | `reproduce` | `ReproduceConfig` |
| the positive-control ladder, with its power | `ladder` | `LadderConfig` |

Stages that `reproduce` chains in one run directory also have `compute(cfg, root) -> dict` (the summary
that `run` writes as results.json); `patching.patching_stage` patches the sweep's main-rank LoRA and full-FT
students, and `report.run(MainReport(...))` writes the main job's report.md, report.html and results.json
from its stages' results.
"""
