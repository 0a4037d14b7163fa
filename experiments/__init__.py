"""Runnable experiments: each script is `main(cfg) -> Path` behind a `__main__` guard."""
