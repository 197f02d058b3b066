//! Empty on purpose: the models live in `tests/` and build only under `--cfg wherefore_loom`.
