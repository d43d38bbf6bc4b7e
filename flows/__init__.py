"""Prefect flows, deployments and the `sstcast` command line: thin wrappers over pipeline/."""
