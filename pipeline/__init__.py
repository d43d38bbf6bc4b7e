"""sstcast library: sources, fetch, preprocess, store, windows, model, train, forecast,
baselines, metrics, maps and config. Never imports prefect (see DESIGN.md §1)."""
