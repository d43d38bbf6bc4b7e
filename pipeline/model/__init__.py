"""The S-MNN forecast model: config, network, training windows, modes, training and forecasting.
Reads the SST store through `pipeline.data`; never imports evaluation or products."""
