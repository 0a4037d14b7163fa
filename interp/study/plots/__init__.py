"""All plotting, in one place: localization heatmaps, the reproduction's figures, and saving them.

`heatmap(result)` draws any `LocalizationResult`; `rank_sweep_figure`, `context_matrix_figure`,
`localization_figure`, `where_figure`, `attribution_scatter`, `logit_lens_figure`, `alignment_figure` and `divergence_figure` draw the experiments'
results.json entries; `save_figure` / `save_figures` write HTML, plus PNG when kaleido finds a browser.
"""

from interp.study.plots.claims_map import claims_map_figure
from interp.study.plots.figures import (
    alignment_figure,
    context_matrix_figure,
    divergence_figure,
    localization_figure,
    logit_lens_figure,
    rank_sweep_figure,
)
from interp.study.plots.heatmaps import CLASS_COLOURS, heatmap, save_figure, save_figures, visible
from interp.study.plots.where import attribution_scatter, where_figure

__all__ = [
    "attribution_scatter",
    "visible",
    "where_figure",
    "claims_map_figure",
    "CLASS_COLOURS",
    "alignment_figure",
    "context_matrix_figure",
    "divergence_figure",
    "heatmap",
    "localization_figure",
    "logit_lens_figure",
    "rank_sweep_figure",
    "save_figure",
    "save_figures",
]
