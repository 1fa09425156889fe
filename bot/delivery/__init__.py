"""Stage 4: one durable outbox and the sender that empties it within Telegram's limits."""
