"""SST data in: sources, download, preprocessing, ingest and the SST store (with its lock).
Imports only the shared top-level modules, never model, evaluation or products."""
