"""Act on the scores: audiences for ad platforms (workflows and sequences come next)."""
