"""What a trained run shows: its run folder, plots and the spiral figure."""
