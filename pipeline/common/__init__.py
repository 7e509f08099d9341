"""What every part shares: config, command-line helpers, errors, files, progress, devices, Dask."""
