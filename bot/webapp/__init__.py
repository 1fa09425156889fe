"""The Telegram Mini App: a subscriber's settings on one screen (`GET /app`, API under /app/api)."""
