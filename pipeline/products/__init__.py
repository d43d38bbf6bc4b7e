"""Products for people and other tools: maps and figures, netCDF and climpred exports.
The top of the library: may use data and evaluation, is used by nothing in pipeline."""
