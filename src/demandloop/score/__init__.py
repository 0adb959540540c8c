"""How ready are they: engagement, intent surge and fit, from one shared definition."""
