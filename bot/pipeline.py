"""What happens after releases are stored: match them once, then alert instant subscribers."""

from __future__ import annotations

from bot.db import SessionFactory


async def on_releases_stored(
    sessions: SessionFactory, new_ids: list[int], updated_ids: list[int], *, announce: bool
) -> None:
    """Called by feed ingest after each poll that stored or changed releases.

    New and changed releases are matched against every topic; new ones that are news
    (`announce`, i.e. not a feed's first poll) go out at once to chats on `instant`.
    """
    from bot.digest.service import queue_instant_alerts
    from bot.matching.service import match_releases

    ids = [*new_ids, *updated_ids]
    if not ids:
        return
    await match_releases(sessions, ids)
    if announce and new_ids:
        await queue_instant_alerts(sessions, new_ids)
