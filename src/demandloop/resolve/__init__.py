"""Who is it: the identity graph (persons) and account resolution (people and visitors)."""
