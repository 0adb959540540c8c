"""Enrich touches: channel taxonomy (and later motion, personas, topics)."""
