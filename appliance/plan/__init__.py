"""Plans: semantic diffs between what is deployed (or any build) and what the config says now."""
