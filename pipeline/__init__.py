"""sstcast library, in rooms by role (see docs/design.md §1 for the import rule):

- `pipeline.data`: SST sources, download, preprocessing, ingest and the SST store;
- `pipeline.model`: the S-MNN model: config, network, windows, modes, training, forecasting;
- `pipeline.evaluation`: baselines, skill metrics, the forecast archive and its verification;
- `pipeline.products`: maps and exports for people and other tools.

The contracts all of them share sit at the top: `climatology` (time step, seasons, the
climatology fit, the ocean mask), `forecast_store` (the forecast store's layout), `regions`
(the regions table and area weights), `cf` (CF metadata) and `progress`. Never imports prefect."""
