"""Stage 3: when each chat's digest is due, and what it says."""
