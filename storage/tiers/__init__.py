"""Storage tiers: where blobs live over their life (hot, cool, cold, archive), the rules that
move studies between tiers, the two-phase moves, recalls from tiers that need one, costs."""
