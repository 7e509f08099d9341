"""Stage two: training heads on cached features, single runs, stacks and sweeps."""
