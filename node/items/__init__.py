"""The item projection: rows folded from each item's events (projection), the
background folder that keeps them current (materialiser) and the colour tallies
kept beside them (tallies)."""
