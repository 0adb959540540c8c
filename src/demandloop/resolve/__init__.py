"""Who is it: persons from identifiers, accounts from persons and visitors."""
