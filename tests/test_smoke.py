from sqlmodel import select

from bot.models import Chat


async def test_any_database_stores_a_chat(any_sessions):
    async with any_sessions() as s:
        s.add(Chat(telegram_id=-1001234567890123))
        await s.commit()
    async with any_sessions() as s:
        chat = (await s.exec(select(Chat))).one()
    assert chat.telegram_id == -1001234567890123
