"""Collect first-party signals: Segment-spec validation, event files, CRM and lead imports."""
