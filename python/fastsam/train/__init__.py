"""Training: config loading, losses, schedules and the `sam-train` loop."""
