"""What worked: overview, conversion, and later funnel, demand health and attribution."""
