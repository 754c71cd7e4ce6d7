"""Shipped configuration data (coefficients, presets, GPU specs, model facts)."""
