"""Reports on trained heads."""
