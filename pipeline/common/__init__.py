"""What every part shares: config, command-line helpers, errors, files and output folders,
progress, devices, Dask."""
