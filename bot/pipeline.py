"""What happens after releases are stored: match them once, then alert instant subscribers."""

from __future__ import annotations

from collections.abc import Sequence

from bot.db import SessionFactory


async def on_releases_stored(
    sessions: SessionFactory,
    new_ids: list[int],
    updated_ids: list[int],
    *,
    announce: bool,
    corrected_ids: Sequence[int] = (),
    mini_app_url: str | None = None,
) -> None:
    """Called by feed ingest after each poll that stored or changed releases.

    New and changed releases are matched against every topic (copies of a release another
    feed carried first are not: that one is shown). New ones that are news (`announce`: some
    are not history) go out at once to chats on `instant`, and so do corrections
    (`corrected_ids`) to the instant chats that had them; `mini_app_url` for their Manage
    button.
    """
    from bot.digest.service import queue_instant_alerts
    from bot.matching.service import match_releases

    ids = [*new_ids, *updated_ids]
    if not ids:
        return
    await match_releases(sessions, ids)
    if announce and new_ids:
        await queue_instant_alerts(sessions, new_ids, mini_app_url=mini_app_url)
    if corrected_ids:
        await queue_instant_alerts(
            sessions, list(corrected_ids), corrections=True, mini_app_url=mini_app_url
        )
