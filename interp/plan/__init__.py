"""Compute planning: what a run will need before it loads a model (read from config.json alone).

- `shapes`: a model's shape (layers, widths, heads, vocabulary) from its config.json;
- `flops`: the FLOPs a forward or backward pass of that shape costs, and the machine's matmul rate;
- `plan`: each stage's memory by component and its time (a sampling, training or hooked stage);
- `plan_check`: the plan as a table, the device it is checked against, and `gate`, which stops a run
  that would not fit.

It imports only `interp.loop`; the study layer and the stages build their plans from it.
"""
