"""Every text the bot says, in English and Traditional Chinese, and `t()` to render one.

Templates are Telegram HTML with `{name}` placeholders. `t()` escapes every parameter,
so user text can never break the markup; a parameter that is already HTML is wrapped in
`Html(...)` by the caller. `t_plain()` renders texts that Telegram shows as plain text
(button labels, callback answers, command descriptions) without escaping. A `count`
parameter of 1 picks the template `KEY_one` where a language has one ("1 release").
"""

# ruff: noqa: E501  (messages read better unbroken)
from __future__ import annotations

import string
from typing import Final, Literal

from bot.delivery.html import escape

Language = Literal["en", "zh"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "zh")
DEFAULT_LANGUAGE: Final[Language] = "en"


class Html(str):
    """A parameter that is already valid Telegram HTML: `t()` inserts it as it is."""

    __slots__ = ()


def language_from_code(code: str | None) -> Language:
    """Telegram's `language_code` (or a /lang argument) -> our language: zh* is Chinese."""
    if code and code.strip().lower().startswith("zh"):
        return "zh"
    return "en"


EN: Final[dict[str, str]] = {
    # /start and /help
    "start": (
        "<b>Hello!</b> I send short digests of government press releases about the topics "
        "you follow.\n"
        "1. Follow a topic: /subscribe customs (English or Chinese, both languages match).\n"
        "2. Pick when: /time 08:00, /timezone Asia/Hong_Kong, /frequency daily.\n"
        "3. Once a day you get one short message with what matched; /help lists everything.\n\n"
        "Tap a popular topic to follow it:"
    ),
    "help": (
        "<b>Commands</b>\n"
        "/start: what I do, and popular topics to follow, e.g. /start\n"
        "/help: this list, e.g. /help\n"
        "/subscribe QUERY (/sub): follow a topic, e.g. /subscribe customs or "
        '/subscribe "national security"\n'
        "/unsubscribe QUERY or N (/unsub): stop following, e.g. /unsubscribe 1\n"
        "/list: the topics followed here, with the schedule\n"
        "/digest: the digest now, e.g. /digest\n"
        "/time HH:MM: digest time, e.g. /time 08:00 or /time 7pm\n"
        "/timezone AREA/CITY or a city: e.g. /timezone Asia/Hong_Kong or /timezone London\n"
        "/frequency daily|weekly [DAY]|instant: e.g. /frequency weekly monday\n"
        "/pause and /resume: stop and restart deliveries\n"
        "/search QUERY: newest releases, e.g. /search typhoon\n"
        "/lang en|zh: e.g. /lang zh\n"
        "/settings: topics and schedule on one screen\n"
        "/whoami: your and this chat's Telegram ids\n"
        "/stop: forget this chat and everything about it\n\n"
        "<b>Queries</b>: words are ANDed (customs seizure); "
        '"a phrase"; customs OR excise; -exclude; prefix*.'
    ),
    "help_admin": (
        "\n\n<b>Admin</b>\n"
        "/broadcast TEXT: e.g. /broadcast &lt;b&gt;Maintenance&lt;/b&gt; tonight\n"
        "/stats, /feeds\n"
        "/addfeed URL: e.g. /addfeed https://www.info.gov.hk/gia/rss/general_en.xml\n"
        "/removefeed N: e.g. /removefeed 2"
    ),
    # /subscribe
    "subscribe_usage": "Tell me what to follow, e.g. /subscribe customs",
    "subscribed": "Following <b>{label}</b>.",
    "subscribed_aliases": "It also matches: {aliases}",
    "subscribed_example": "Recent example: {example}",
    "subscribed_no_example": "Nothing matched in the last 30 days; new releases will come in your digest.",
    "already_subscribed": "You already follow <b>{label}</b> here.",
    "query_bad_characters": (
        "Please type the topic without control or direction characters, e.g. /subscribe customs"
    ),
    # what is wrong with a query (bot.matching.query.QueryError's keys), with an example
    "query_too_long": "That query is {length} characters long, at most {limit}: shorten it, e.g. customs -conference",
    "query_too_long_normalised": "The query is too long once normalised (at most {limit} characters): shorten it, e.g. customs",
    "query_empty": 'The query is empty: say what to follow, e.g. customs or "national security"',
    "query_unbalanced_quote": "Unbalanced quote in {text}: close the quote, e.g. {fixed}",
    "query_lone_star": "A lone * matches nothing: put it at the end of a word, e.g. smuggl*",
    "query_star_inside": "* goes only at the end of a word ({word}): e.g. smuggl* finds smuggle and smuggling",
    "query_short_prefix": "{word} is too short a prefix: give at least {letters} letters before the *, e.g. smuggl*",
    "query_or_at_start": "OR at the start of the query: put words on both sides, e.g. customs OR excise",
    "query_or_at_end": "OR at the end of the query: put words on both sides, e.g. customs OR excise",
    "query_two_ors": "Two ORs in a row: put words between them, e.g. customs OR excise",
    "query_or_empty_side": "Nothing to look for on one side of OR: e.g. customs OR excise",
    "query_too_many_terms": "Too many terms ({terms}, at most {limit}): keep the ones that matter, e.g. customs seizure",
    "query_only_exclusions": "Only exclusions: say what to look for too, e.g. customs -conference",
    "query_only_punctuation": "No words in the query, only punctuation: use words, e.g. customs",
    "query_wanted_and_excluded": "{term} is both wanted and excluded: drop one, e.g. customs -conference",
    "too_many_subscriptions": (
        "This chat already follows {count} topics, the most it can; remove one first, "
        "e.g. /unsubscribe 1"
    ),
    "too_many_subscriptions_one": "This chat already follows a topic, the most it can; remove it first, e.g. /unsubscribe 1",
    # /unsubscribe
    "unsubscribe_choose": "Which topic should I stop following? Tap one:",
    "unsubscribed": "Stopped following <b>{label}</b>.",
    "unsubscribe_not_found": "Nothing followed here matches {query}; see /list, e.g. /unsubscribe 1",
    "nothing_followed": "Nothing is followed here yet; try /subscribe customs",
    # /list
    "list_header": "<b>Topics followed here ({count})</b>",
    "list_item": "{number}. {label}",
    "schedule_daily": "Digest every day at {time} ({timezone}).",
    "schedule_weekly": "Digest every {weekday} at {time} ({timezone}).",
    "schedule_instant": "Each match is sent as it arrives.",
    "schedule_paused": "Deliveries are paused; /resume restarts them.",
    "next_digest": "Next digest: {when}.",
    "weekday_0": "Monday",
    "weekday_1": "Tuesday",
    "weekday_2": "Wednesday",
    "weekday_3": "Thursday",
    "weekday_4": "Friday",
    "weekday_5": "Saturday",
    "weekday_6": "Sunday",
    # /digest
    "digest_empty": "Nothing new since {since}.",
    "digest_empty_first": "Nothing new yet; follow a topic first, e.g. /subscribe customs",
    # settings
    "time_usage": "Send a time, e.g. /time 08:00",
    "time_invalid": "{value} is not a time; use HH:MM, e.g. /time 08:00 or /time 7pm",
    "timezone_usage": "Send a timezone as AREA/CITY, e.g. /timezone Asia/Hong_Kong",
    "timezone_invalid": "{value} is not a timezone I know; send a city or AREA/CITY, e.g. /timezone London or /timezone Asia/Hong_Kong",
    "timezone_choose": "{value} could be one of these timezones; tap yours:",
    "frequency_usage": "Choose daily, weekly or instant, e.g. /frequency daily",
    "frequency_invalid": "{value} is not a rhythm I know; choose daily, weekly or instant, e.g. /frequency daily",
    "paused": "Paused: nothing will be sent until /resume; your topics are kept.",
    "already_paused": "Deliveries are already paused; /resume restarts them.",
    "resumed": "Resumed: deliveries start again.",
    "not_paused": "Deliveries are not paused; /pause stops them.",
    "lang_usage": "Choose en or zh, e.g. /lang zh",
    "lang_set": "I will speak English here.",
    # /search
    "search_usage": "Tell me what to look for, e.g. /search typhoon",
    "search_header": "<b>Newest releases for {query}</b>",
    "search_item": "{number}. {release} ({date})",
    "search_none": "No stored release matches {query}; try a broader word, e.g. /search customs",
    # /stop
    "stop_confirm": "Forget this chat? Its topics, settings and queued messages will be deleted.",
    "stop_cancelled": "Kept: nothing was deleted.",
    "button_stop_confirm": "🗑 Forget this chat",
    "button_stopped": "Forgotten",
    "stopped": (
        "Done: I forgot this chat, its topics, settings and queued messages. /start begins again."
    ),
    # /whoami
    "whoami": "Your Telegram id: <code>{user}</code>\nThis chat's id: <code>{chat}</code>",
    "whoami_anonymous": "You write anonymously here; this chat's id: <code>{chat}</code>",
    # a forum topic that was closed or deleted
    "topic_closed": "This topic is closed; digests for it now come here.",
    # errors and the unexpected
    "group_admins_only": "Only this group's administrators can change its topics or settings.",
    "unknown_command": "I don't know that command; /help lists them all.",
    "plain_text": "I understand commands; try /subscribe customs or /help.",
    "argument_too_long": "That is too long; keep it under {limit} characters, e.g. /search customs",
    "error_generic": "Sorry, something went wrong on my side. Please try again in a minute.",
    # buttons (plain text: labels and callback answers)
    "button_stale": "This button is out of date; send /list to see what is current.",
    "button_subscribed": "Following {label}",
    "button_already_subscribed": "Already following {label}",
    "button_unsubscribed": "Stopped following {label}",
    "button_unsubscribe": "✖ {label}",
    "button_admins_only": "Only the group's administrators can do that.",
    "button_confirm": "✅ Confirm",
    "button_cancel": "✖ Cancel",
    "button_timezone_set": "Timezone: {timezone}",
    # admin
    "admins_only": "This command is for admins.",
    "stats_header": "<b>Statistics</b>",
    "feeds_header": "<b>Feeds ({count})</b>",
    "feeds_none": "No feeds yet; add one, e.g. /addfeed https://www.info.gov.hk/gia/rss/general_en.xml",
    "feeds_item": (
        "{number}. {url}\n"
        "    last success: {success}; last error: {error}\n"
        "    items: {items}; next poll: {next}"
    ),
    "never": "never",
    "none": "none",
    "addfeed_usage": "Send the feed's address, e.g. /addfeed https://www.info.gov.hk/gia/rss/general_en.xml",
    # why /addfeed refused an address (bot.feeds.errors.FeedInputError's keys)
    "feed_url_scheme": "Not added: only http:// and https:// feed addresses can be added, e.g. /addfeed https://example.org/rss.xml",
    "feed_url_invalid": "Not added: {url} is not a valid address, e.g. /addfeed https://example.org/rss.xml",
    "feed_url_too_long": "Not added: the address is longer than {limit} characters, e.g. /addfeed https://example.org/rss.xml",
    "feed_already_listed": "Not added: this feed is already in the list; see /feeds",
    "addfeed_ok": "Added {url}: {count} new releases found.",
    "addfeed_ok_one": "Added {url}: 1 new release found.",
    "addfeed_not_modified": "Added {url}: nothing new right now.",
    "addfeed_failed": "Added {url}, but the first poll failed: {error}",
    # why a poll failed (bot.feeds.errors.FeedError's kinds); {detail} is the poller's English
    "feed_error_timeout": "timed out ({detail})",
    "feed_error_too_large": "the feed is too large ({detail})",
    "feed_error_http": "the server answered HTTP {status} ({detail})",
    "feed_error_not_a_feed": "not a feed ({detail})",
    "feed_error_unparseable": "the feed cannot be read ({detail})",
    "feed_error_empty": "the feed has no usable items ({detail})",
    "feed_error_connect": "cannot connect to the server ({detail})",
    "feed_error_connection": "the connection failed ({detail})",
    "feed_error_tls": "the secure connection failed ({detail})",
    "feed_error_bad_url": "the address cannot be fetched ({detail})",
    "feed_error_bad_encoding": "the server sent a body that cannot be decoded ({detail})",
    "feed_error_too_many_redirects": "too many redirects ({detail})",
    "feed_error_gone": "the feed was removed ({detail})",
    "feed_error_matching": "the releases were stored but not matched; retried on the next poll ({detail})",
    "feed_error_internal": "an error on our side ({detail})",
    "feed_error_other": "{detail}",
    "removefeed_usage": "Send the feed's number from /feeds, e.g. /removefeed 2",
    "removefeed_ok": "Removed {url}.",
    "removefeed_not_found": "There is no feed {value}; see /feeds, e.g. /removefeed 2",
    "broadcast_usage": "Send the text to broadcast (Telegram HTML), e.g. /broadcast &lt;b&gt;Maintenance&lt;/b&gt; tonight",
    "broadcast_bad_html": "Not queued: {error}",
    # why Telegram would refuse a broadcast's HTML (bot.delivery.html.TelegramHTMLError's keys);
    # what they quote of HTML is escaped: they are HTML like every other text
    "html_invalid": "Telegram would not accept this HTML",
    "html_bare_ampersand": "a bare '&amp;' at character {where}: write &amp;amp; for a literal &amp;",
    "html_bare_lt": "a bare '&lt;' at character {where}: write &amp;lt; for a literal &lt;",
    "html_bad_entity": "{entity} at character {where} is not an entity Telegram knows: only &amp;lt; &amp;gt; &amp;amp; &amp;quot; and numeric ones like &amp;#160; work",
    "html_tag_needs": "tag &lt;{tag}&gt; at character {where} needs {attribute}",
    "html_attribute_not_allowed": "attribute {attribute} is not allowed in tag &lt;{tag}&gt; at character {where}",
    "html_bad_attributes": "malformed attributes in tag &lt;{tag}&gt; at character {where}",
    "html_nested": "tag &lt;{tag}&gt; at character {where} cannot be inside &lt;{outer}&gt;",
    "html_empty": "the message has no text",
    "html_too_long": "the message is {size} characters after parsing; the limit is {limit}",
    "html_tag_unclosed": "tag &lt;{tag}&gt; at character {where} is not closed with '&gt;'",
    "html_unsupported_tag": "Telegram does not support tag &lt;{tag}&gt; (character {where}): use b, i, u, s, a, code, pre, blockquote or tg-spoiler",
    "html_closing_tag": "closing tag &lt;/{tag}&gt; at character {where} matches no open tag",
    "html_never_closed": "tag &lt;{tag}&gt; is never closed: add &lt;/{tag}&gt;",
    "broadcast_preview": "<b>Preview of broadcast #{id}</b>: Confirm sends it to every active chat.",
    "broadcast_cancelled": "Broadcast #{id} cancelled; nothing was sent.",
    "broadcast_queued": "Broadcast #{id} queued to {count} chats.",
    "broadcast_queued_one": "Broadcast #{id} queued to 1 chat.",
    "broadcast_progress": (
        "Broadcast #{id}: {delivered} delivered, {blocked} blocked, {failed} failed, "
        "{pending} pending (of {total})."
    ),
    "broadcast_done": (
        "Broadcast #{id} finished: {delivered} delivered, {blocked} blocked, {failed} failed "
        "(of {total})."
    ),
    "button_broadcast_queued": "Queued to {count} chats",
    "button_broadcast_queued_one": "Queued to 1 chat",
    "button_broadcast_cancelled": "Cancelled",
    "button_broadcast_stale": "This broadcast was already confirmed or cancelled.",
    "button_admins_only_broadcast": "This button is for admins.",
    # command list (setMyCommands): plain text, 1-256 characters
    "cmd_start": "What this bot does, and popular topics",
    "cmd_help": "Every command with an example",
    "cmd_subscribe": "Follow a topic: /subscribe customs",
    "cmd_unsubscribe": "Stop following: /unsubscribe 1",
    "cmd_list": "Topics followed here, and the schedule",
    "cmd_digest": "The digest now",
    "cmd_time": "Digest time: /time 08:00",
    "cmd_timezone": "Timezone: /timezone Asia/Hong_Kong",
    "cmd_frequency": "daily, weekly or instant",
    "cmd_pause": "Pause deliveries",
    "cmd_resume": "Resume deliveries",
    "cmd_search": "Newest releases: /search typhoon",
    "cmd_lang": "Language: /lang en or /lang zh",
    "cmd_stop": "Forget this chat",
    "cmd_settings": "Settings on one screen",
    "cmd_whoami": "Your and this chat's Telegram ids",
    "cmd_broadcast": "Admin: send a message to every chat",
    "cmd_stats": "Admin: figures",
    "cmd_feeds": "Admin: feeds and their health",
    "cmd_addfeed": "Admin: add a feed",
    "cmd_removefeed": "Admin: remove a feed",
    # the digest and instant alerts (bot.digest.compose)
    "digest_title": "📰 <b>Press digest · {date}</b>",
    "alert_title": "🔔 <b>New press releases</b>",
    "digest_count": "{count} new releases",
    "digest_count_one": "1 new release",
    "digest_more": "…and {count} more: /search {query}",
    "digest_more_topics": "…and {releases} more in {count} more topics: /list",
    "digest_more_topics_one": "…and {releases} more in another topic: /list",
    "digest_part": "({index}/{total})",
    "digest_continued": "(continued)",
    "digest_corrected": "✏️ <b>Corrected:</b> ",
    "digest_manage_button": "⚙️ Manage topics",
    "digest_manage_line": "<i>Manage what comes here: /list</i>",
    # /stats (also `press-digest stats`): plain text in a <pre>
    "stats_chats": "chats: {chats} ({active} active, {paused} paused)",
    "stats_subscriptions": "subscriptions: {subscriptions} (distinct topics: {topics})",
    "stats_feeds": "feeds: {feeds} ({failing} failing)",
    "stats_releases": "releases: {releases} ({recent} in the last 24 h)",
    "stats_messages": "messages: {queued} queued, {sent} sent, {failed} failed, {dropped} dropped (blocked chats)",
    "stats_feed_ok": "ok",
    "stats_feed_failing": "failing x{failures}: {error}",
    "stats_feed": "  #{id} {url}: {state}; last success {success}; items: {items}; next poll {next}",
    # /settings and the Mini App (plain text: the page sets it as text, never as HTML)
    "settings_open": "Topics, digest time, timezone and language on one screen: tap the button.",
    "settings_button": "⚙️ Open settings",
    "settings_menu_button": "Settings",
    "settings_in_groups": (
        "A group's settings are changed with commands by its administrators: /list, "
        "/subscribe customs, /unsubscribe 1, /time 08:00, /timezone Asia/Hong_Kong, "
        "/frequency daily, /pause, /lang zh"
    ),
    "settings_commands": (
        "Change settings with commands: /list shows them; /subscribe customs, /unsubscribe 1, "
        "/time 08:00, /timezone Asia/Hong_Kong, /frequency weekly monday, /pause, /lang zh"
    ),
    "weekday_invalid": "{value} is not a weekday; use monday … sunday, e.g. /frequency weekly monday",
    "app_title": "Digest settings",
    "app_loading": "Loading…",
    "app_topics": "Topics you follow",
    "app_topics_none": "No topics yet: add one below.",
    "app_add_placeholder": "Add a topic, e.g. customs",
    "app_add": "Add",
    "app_remove": "Stop following {label}",
    "app_preview_means": "Matches: {label}",
    "app_preview_recent": "Recent releases it would have matched:",
    "app_preview_none": "Nothing stored matches yet; new releases will come in your digest.",
    "app_schedule": "Schedule",
    "app_time": "Digest time",
    "app_timezone": "Timezone",
    "app_timezone_search": "Search, e.g. Hong Kong",
    "app_timezone_device": "Suggested from this device: tap Save to use it.",
    "app_save": "Save",
    "app_frequency": "Frequency",
    "app_daily": "Daily",
    "app_weekly": "Weekly",
    "app_instant": "Instant",
    "app_weekday": "Day",
    "app_language": "Language",
    "app_pause": "Pause deliveries",
    "app_saved": "Saved.",
    "app_error_auth": "This page works only when opened from the bot in Telegram ({reason}).",
    # why a request's initData proves nothing (bot.webapp.initdata.InitDataError's keys)
    "app_auth_missing": "initData is missing: open this page from the bot in Telegram",
    "app_auth_malformed": "initData is malformed",
    "app_auth_forged": "initData is not signed for this bot",
    "app_auth_future": "initData is dated in the future: check this device's clock",
    "app_auth_stale": "initData is older than a day: close the app and open it again",
    "app_auth_no_user": "initData names no user",
    "app_error_network": "Could not reach the bot; check the connection and try again.",
}

ZH: Final[dict[str, str]] = {
    "start": (
        "<b>你好！</b>我會把你關注的主題的政府新聞公報，整理成簡短摘要傳給你。\n"
        "1. 關注主題：/subscribe 海關（中英文都可以，兩種語言的公報都會配對）。\n"
        "2. 選擇時間：/time 08:00、/timezone Asia/Hong_Kong、/frequency daily。\n"
        "3. 每天你會收到一則簡短訊息，列出配對到的公報；/help 列出所有指令。\n\n"
        "點選熱門主題即可關注："
    ),
    "help": (
        "<b>指令</b>\n"
        "/start：簡介及熱門主題，例如 /start\n"
        "/help：本指令表，例如 /help\n"
        "/subscribe 查詢（/sub）：關注主題，例如 /subscribe customs 或 "
        '/subscribe "national security"\n'
        "/unsubscribe 查詢或編號（/unsub）：取消關注，例如 /unsubscribe 1\n"
        "/list：此處關注的主題及發送時間\n"
        "/digest：立即發送摘要，例如 /digest\n"
        "/time HH:MM：摘要時間，例如 /time 08:00 或 /time 7pm\n"
        "/timezone 地區/城市或城市名：例如 /timezone Asia/Hong_Kong 或 /timezone 香港\n"
        "/frequency daily|weekly [星期]|instant：例如 /frequency weekly monday\n"
        "/pause 及 /resume：暫停及恢復發送\n"
        "/search 查詢：最新的公報，例如 /search 颱風\n"
        "/lang en|zh：例如 /lang en\n"
        "/settings：在同一畫面管理主題及發送時間\n"
        "/whoami：你及此聊天室的 Telegram 編號\n"
        "/stop：刪除此聊天室的所有資料\n\n"
        "<b>查詢</b>：多個詞須同時出現（customs seizure）；"
        '"片語"；customs OR excise；-排除；字首*。'
    ),
    "help_admin": (
        "\n\n<b>管理員</b>\n"
        "/broadcast 文字：例如 /broadcast &lt;b&gt;今晚系統維護&lt;/b&gt;\n"
        "/stats、/feeds\n"
        "/addfeed 網址：例如 /addfeed https://www.info.gov.hk/gia/rss/general_zh.xml\n"
        "/removefeed 編號：例如 /removefeed 2"
    ),
    "subscribe_usage": "請告訴我要關注甚麼，例如 /subscribe 海關",
    "subscribed": "已關注 <b>{label}</b>。",
    "subscribed_aliases": "也會配對：{aliases}",
    "subscribed_example": "近期例子：{example}",
    "subscribed_no_example": "過去 30 天沒有配對的公報；有新公報時會放進你的摘要。",
    "already_subscribed": "此處已經關注 <b>{label}</b>。",
    "query_bad_characters": "請勿在主題中使用控制字元或方向字元，例如 /subscribe 海關",
    "query_too_long": "這個查詢有 {length} 個字元，上限為 {limit} 個：請縮短，例如 customs -conference",
    "query_too_long_normalised": "這個查詢整理後太長（上限 {limit} 個字元）：請縮短，例如 海關",
    "query_empty": '查詢是空的：請說明要關注甚麼，例如 海關 或 "national security"',
    "query_unbalanced_quote": "{text} 的引號沒有閉合：請補上引號，例如 {fixed}",
    "query_lone_star": "單獨一個 * 不會配對任何內容：請放在字詞末尾，例如 smuggl*",
    "query_star_inside": "* 只能放在字詞末尾（{word}）：例如 smuggl* 會找到 smuggle 及 smuggling",
    "query_short_prefix": "{word} 的字首太短：* 之前最少要有 {letters} 個字母，例如 smuggl*",
    "query_or_at_start": "OR 在查詢開頭：OR 兩邊都要有字詞，例如 customs OR excise",
    "query_or_at_end": "OR 在查詢末尾：OR 兩邊都要有字詞，例如 customs OR excise",
    "query_two_ors": "連續兩個 OR：請在中間加上字詞，例如 customs OR excise",
    "query_or_empty_side": "OR 其中一邊沒有要找的字詞：例如 customs OR excise",
    "query_too_many_terms": "字詞太多（{terms} 個，上限 {limit} 個）：請只保留重要的，例如 customs seizure",
    "query_only_exclusions": "只有要排除的字詞：請同時說明要找甚麼，例如 customs -conference",
    "query_only_punctuation": "查詢只有標點符號，沒有字詞：請使用字詞，例如 海關",
    "query_wanted_and_excluded": "{term} 同時是要找及要排除的字詞：請刪除其中一個，例如 customs -conference",
    "too_many_subscriptions": "此聊天室已關注 {count} 個主題，已達上限；請先取消一個，例如 /unsubscribe 1",
    "unsubscribe_choose": "要取消關注哪一個主題？請點選：",
    "unsubscribed": "已取消關注 <b>{label}</b>。",
    "unsubscribe_not_found": "此處沒有關注與 {query} 相符的主題；請看 /list，例如 /unsubscribe 1",
    "nothing_followed": "此處尚未關注任何主題；試試 /subscribe 海關",
    "list_header": "<b>此處關注的主題（{count} 個）</b>",
    "list_item": "{number}. {label}",
    "schedule_daily": "每天 {time}（{timezone}）發送摘要。",
    "schedule_weekly": "每{weekday} {time}（{timezone}）發送摘要。",
    "schedule_instant": "每有配對的公報即時發送。",
    "schedule_paused": "發送已暫停；/resume 可恢復。",
    "next_digest": "下次摘要：{when}。",
    "weekday_0": "星期一",
    "weekday_1": "星期二",
    "weekday_2": "星期三",
    "weekday_3": "星期四",
    "weekday_4": "星期五",
    "weekday_5": "星期六",
    "weekday_6": "星期日",
    "digest_empty": "自 {since} 起沒有新的公報。",
    "digest_empty_first": "暫時沒有新的公報；請先關注主題，例如 /subscribe 海關",
    "time_usage": "請提供時間，例如 /time 08:00",
    "time_invalid": "{value} 不是有效的時間；請用 HH:MM，例如 /time 08:00 或 /time 7pm",
    "timezone_usage": "請以「地區/城市」提供時區，例如 /timezone Asia/Hong_Kong",
    "timezone_invalid": "{value} 不是已知的時區；請提供城市或「地區/城市」，例如 /timezone 香港 或 /timezone Asia/Hong_Kong",
    "timezone_choose": "{value} 可能是以下其中一個時區；請點選：",
    "frequency_usage": "請選擇 daily、weekly 或 instant，例如 /frequency daily",
    "frequency_invalid": "{value} 不是可用的頻率；請選擇 daily、weekly 或 instant，例如 /frequency daily",
    "paused": "已暫停：在 /resume 之前不會發送任何訊息；你的主題會保留。",
    "already_paused": "發送已經暫停；/resume 可恢復。",
    "resumed": "已恢復發送。",
    "not_paused": "發送並未暫停；/pause 可暫停。",
    "lang_usage": "請選擇 en 或 zh，例如 /lang en",
    "lang_set": "我會在這裏使用繁體中文。",
    "search_usage": "請告訴我要找甚麼，例如 /search 颱風",
    "search_header": "<b>{query} 的最新公報</b>",
    "search_item": "{number}. {release}（{date}）",
    "search_none": "沒有已儲存的公報與 {query} 相符；試試較廣泛的字詞，例如 /search 海關",
    "stop_confirm": "要刪除此聊天室的資料嗎？其主題、設定及待發訊息都會刪除。",
    "stop_cancelled": "已保留：沒有刪除任何資料。",
    "button_stop_confirm": "🗑 刪除此聊天室的資料",
    "button_stopped": "已刪除",
    "stopped": "完成：已刪除此聊天室的主題、設定及待發訊息。/start 可重新開始。",
    "whoami": "你的 Telegram 編號：<code>{user}</code>\n此聊天室的編號：<code>{chat}</code>",
    "whoami_anonymous": "你在此匿名發言；此聊天室的編號：<code>{chat}</code>",
    "topic_closed": "此主題已關閉；其摘要現在會發送到這裏。",
    "group_admins_only": "只有此群組的管理員可以更改主題或設定。",
    "unknown_command": "我不認識這個指令；/help 列出所有指令。",
    "plain_text": "我只懂指令；試試 /subscribe 海關 或 /help。",
    "argument_too_long": "內容太長；請少於 {limit} 個字元，例如 /search 海關",
    "error_generic": "抱歉，系統出了問題。請稍後再試。",
    "button_stale": "這個按鈕已過時；請傳送 /list 查看最新狀況。",
    "button_subscribed": "已關注 {label}",
    "button_already_subscribed": "已經關注 {label}",
    "button_unsubscribed": "已取消關注 {label}",
    "button_unsubscribe": "✖ {label}",
    "button_admins_only": "只有群組管理員可以這樣做。",
    "button_confirm": "✅ 確認",
    "button_cancel": "✖ 取消",
    "button_timezone_set": "時區：{timezone}",
    "admins_only": "此指令只供管理員使用。",
    "stats_header": "<b>統計</b>",
    "feeds_header": "<b>資訊來源（{count} 個）</b>",
    "feeds_none": "尚未有資訊來源；請新增，例如 /addfeed https://www.info.gov.hk/gia/rss/general_zh.xml",
    "feeds_item": (
        "{number}. {url}\n"
        "    上次成功：{success}；上次錯誤：{error}\n"
        "    項目：{items}；下次讀取：{next}"
    ),
    "never": "從未",
    "none": "無",
    "addfeed_usage": "請提供資訊來源的網址，例如 /addfeed https://www.info.gov.hk/gia/rss/general_zh.xml",
    "feed_url_scheme": "未有新增：只可以新增 http:// 或 https:// 的資訊來源網址，例如 /addfeed https://example.org/rss.xml",
    "feed_url_invalid": "未有新增：{url} 不是有效的網址，例如 /addfeed https://example.org/rss.xml",
    "feed_url_too_long": "未有新增：網址超過 {limit} 個字元，例如 /addfeed https://example.org/rss.xml",
    "feed_already_listed": "未有新增：此資訊來源已在列表中；請看 /feeds",
    "addfeed_ok": "已新增 {url}：找到 {count} 則新公報。",
    "addfeed_not_modified": "已新增 {url}：暫時沒有新內容。",
    "addfeed_failed": "已新增 {url}，但首次讀取失敗：{error}",
    "feed_error_timeout": "伺服器未能及時回應",
    "feed_error_too_large": "資訊來源的內容太大",
    "feed_error_http": "伺服器回應 HTTP {status} 錯誤",
    "feed_error_not_a_feed": "此網址不是 RSS 或 Atom 資訊來源",
    "feed_error_unparseable": "無法讀取資訊來源的內容",
    "feed_error_empty": "資訊來源沒有可用的項目",
    "feed_error_connect": "無法連接伺服器",
    "feed_error_connection": "連線中斷",
    "feed_error_tls": "安全連線失敗",
    "feed_error_bad_url": "無法讀取此網址",
    "feed_error_bad_encoding": "伺服器傳來的內容無法解碼",
    "feed_error_too_many_redirects": "重新導向次數太多",
    "feed_error_gone": "資訊來源已被移除",
    "feed_error_matching": "公報已儲存但未能配對；下次讀取時會再試",
    "feed_error_internal": "系統內部錯誤",
    "feed_error_other": "其他錯誤",
    "removefeed_usage": "請提供 /feeds 中的編號，例如 /removefeed 2",
    "removefeed_ok": "已移除 {url}。",
    "removefeed_not_found": "沒有編號 {value} 的資訊來源；請看 /feeds，例如 /removefeed 2",
    "broadcast_usage": "請提供要廣播的文字（Telegram HTML），例如 /broadcast &lt;b&gt;今晚系統維護&lt;/b&gt;",
    "broadcast_bad_html": "未有排隊發送：{error}",
    "html_invalid": "Telegram 不會接受這段 HTML",
    "html_bare_ampersand": "第 {where} 個字元是單獨的「&amp;」：要顯示 &amp; 請寫 &amp;amp;",
    "html_bare_lt": "第 {where} 個字元是單獨的「&lt;」：要顯示 &lt; 請寫 &amp;lt;",
    "html_bad_entity": "第 {where} 個字元的 {entity} 不是 Telegram 認識的實體：只可以用 &amp;lt; &amp;gt; &amp;amp; &amp;quot; 及數字實體，例如 &amp;#160;",
    "html_tag_needs": "第 {where} 個字元的 &lt;{tag}&gt; 標籤需要 {attribute}",
    "html_attribute_not_allowed": "第 {where} 個字元的 &lt;{tag}&gt; 標籤不可以有 {attribute} 屬性",
    "html_bad_attributes": "第 {where} 個字元的 &lt;{tag}&gt; 標籤屬性格式錯誤",
    "html_nested": "第 {where} 個字元的 &lt;{tag}&gt; 標籤不可以放在 &lt;{outer}&gt; 之內",
    "html_empty": "訊息沒有文字",
    "html_too_long": "訊息解析後有 {size} 個字元，上限為 {limit} 個",
    "html_tag_unclosed": "第 {where} 個字元的 &lt;{tag}&gt; 標籤沒有以「&gt;」結束",
    "html_unsupported_tag": "Telegram 不支援 &lt;{tag}&gt; 標籤（第 {where} 個字元）：請用 b、i、u、s、a、code、pre、blockquote 或 tg-spoiler",
    "html_closing_tag": "第 {where} 個字元的結束標籤 &lt;/{tag}&gt; 沒有對應的開始標籤",
    "html_never_closed": "&lt;{tag}&gt; 標籤沒有結束：請加上 &lt;/{tag}&gt;",
    "broadcast_preview": "<b>廣播 #{id} 預覽</b>：按「確認」會發送給所有使用中的聊天室。",
    "broadcast_cancelled": "廣播 #{id} 已取消；沒有發送任何訊息。",
    "broadcast_queued": "廣播 #{id} 已排隊發送給 {count} 個聊天室。",
    "broadcast_progress": (
        "廣播 #{id}：已送達 {delivered}，被封鎖 {blocked}，失敗 {failed}，"
        "待發 {pending}（共 {total}）。"
    ),
    "broadcast_done": "廣播 #{id} 完成：已送達 {delivered}，被封鎖 {blocked}，失敗 {failed}（共 {total}）。",
    "button_broadcast_queued": "已排隊發送給 {count} 個聊天室",
    "button_broadcast_cancelled": "已取消",
    "button_broadcast_stale": "此廣播已經確認或取消。",
    "button_admins_only_broadcast": "此按鈕只供管理員使用。",
    "cmd_start": "機械人簡介及熱門主題",
    "cmd_help": "所有指令及例子",
    "cmd_subscribe": "關注主題：/subscribe 海關",
    "cmd_unsubscribe": "取消關注：/unsubscribe 1",
    "cmd_list": "此處關注的主題及發送時間",
    "cmd_digest": "立即發送摘要",
    "cmd_time": "摘要時間：/time 08:00",
    "cmd_timezone": "時區：/timezone Asia/Hong_Kong",
    "cmd_frequency": "daily、weekly 或 instant",
    "cmd_pause": "暫停發送",
    "cmd_resume": "恢復發送",
    "cmd_search": "最新公報：/search 颱風",
    "cmd_lang": "語言：/lang en 或 /lang zh",
    "cmd_stop": "刪除此聊天室的資料",
    "cmd_settings": "在同一畫面管理設定",
    "cmd_whoami": "你及此聊天室的 Telegram 編號",
    "cmd_broadcast": "管理員：向所有聊天室發送訊息",
    "cmd_stats": "管理員：統計數字",
    "cmd_feeds": "管理員：資訊來源及其狀況",
    "cmd_addfeed": "管理員：新增資訊來源",
    "cmd_removefeed": "管理員：移除資訊來源",
    "digest_title": "📰 <b>新聞公報摘要 · {date}</b>",
    "alert_title": "🔔 <b>最新新聞公報</b>",
    "digest_count": "{count} 則新公報",
    "digest_more": "…還有 {count} 則：/search {query}",
    "digest_more_topics": "…還有 {count} 個主題共 {releases} 則：/list",
    "digest_part": "（{index}/{total}）",
    "digest_continued": "（續）",
    "digest_corrected": "✏️ <b>更正：</b>",
    "digest_manage_button": "⚙️ 管理主題",
    "digest_manage_line": "<i>管理此處收到的內容：/list</i>",
    "stats_chats": "聊天室：{chats}（使用中 {active}，暫停 {paused}）",
    "stats_subscriptions": "關注：{subscriptions} 個，共 {topics} 個不同主題",
    "stats_feeds": "資訊來源：{feeds}（失敗 {failing}）",
    "stats_releases": "公報：{releases}（過去 24 小時 {recent}）",
    "stats_messages": "訊息：待發 {queued}，已發 {sent}，失敗 {failed}，放棄 {dropped}（被封鎖的聊天室）",
    "stats_feed_ok": "正常",
    "stats_feed_failing": "連續失敗 {failures} 次：{error}",
    "stats_feed": "  #{id} {url}：{state}；上次成功 {success}；項目 {items}；下次讀取 {next}",
    "settings_open": "在同一畫面管理主題、摘要時間、時區及語言：請點按鈕。",
    "settings_button": "⚙️ 開啟設定",
    "settings_menu_button": "設定",
    "settings_in_groups": (
        "群組的設定由管理員以指令更改：/list、/subscribe 海關、/unsubscribe 1、/time 08:00、"
        "/timezone Asia/Hong_Kong、/frequency daily、/pause、/lang en"
    ),
    "settings_commands": (
        "請以指令更改設定：/list 顯示目前設定；/subscribe 海關、/unsubscribe 1、/time 08:00、"
        "/timezone Asia/Hong_Kong、/frequency weekly monday、/pause、/lang en"
    ),
    "weekday_invalid": "{value} 不是星期幾；請用 monday 至 sunday，例如 /frequency weekly monday",
    "app_title": "摘要設定",
    "app_loading": "載入中…",
    "app_topics": "你關注的主題",
    "app_topics_none": "尚未關注任何主題：請在下面新增。",
    "app_add_placeholder": "新增主題，例如 海關",
    "app_add": "新增",
    "app_remove": "取消關注 {label}",
    "app_preview_means": "配對：{label}",
    "app_preview_recent": "近期會配對到的公報：",
    "app_preview_none": "暫時沒有已儲存的公報相符；有新公報時會放進你的摘要。",
    "app_schedule": "發送時間",
    "app_time": "摘要時間",
    "app_timezone": "時區",
    "app_timezone_search": "搜尋，例如 Hong Kong",
    "app_timezone_device": "根據此裝置建議：按「儲存」使用。",
    "app_save": "儲存",
    "app_frequency": "頻率",
    "app_daily": "每天",
    "app_weekly": "每星期",
    "app_instant": "即時",
    "app_weekday": "星期",
    "app_language": "語言",
    "app_pause": "暫停發送",
    "app_saved": "已儲存。",
    "app_error_auth": "此頁面只能從 Telegram 內的機械人開啟（{reason}）。",
    "app_auth_missing": "沒有登入資料：請在 Telegram 內從機械人開啟此頁面",
    "app_auth_malformed": "登入資料格式錯誤",
    "app_auth_forged": "登入資料並非由此機械人簽發",
    "app_auth_future": "登入資料的日期在未來：請檢查此裝置的時鐘",
    "app_auth_stale": "登入資料已超過一天：請關閉此頁面再重新開啟",
    "app_auth_no_user": "登入資料沒有指明用戶",
    "app_error_network": "無法連接機械人；請檢查網絡後再試。",
}

CATALOGUES: Final[dict[Language, dict[str, str]]] = {"en": EN, "zh": ZH}
# parameters that carry English text (the query parser's, the poller's): Chinese leaves them out
ENGLISH_ONLY_PARAMS: Final[dict[str, frozenset[str]]] = {
    key: frozenset({"detail"}) for key in EN if key.startswith("feed_error_")
}


def placeholders(template: str) -> set[str]:
    """The `{name}` placeholders of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _template(lang: str, key: str, params: dict[str, object] | None = None) -> str:
    catalogue = CATALOGUES.get(language_from_code(lang), EN)
    if params and params.get("count") == 1 and f"{key}_one" in catalogue:
        key = f"{key}_one"  # English says "1 release"; Chinese has no plural
    return catalogue.get(key) or EN[key]


def t(lang: str, key: str, **params: object) -> str:
    """The text `key` in `lang` as Telegram HTML; every str parameter is escaped unless `Html`."""
    safe = {
        name: value if isinstance(value, Html) or not isinstance(value, str) else escape(value)
        for name, value in params.items()
    }
    return _template(lang, key, params).format(**safe)


def t_plain(lang: str, key: str, **params: object) -> str:
    """The text `key` in `lang` for places Telegram shows as plain text (buttons, alerts)."""
    return _template(lang, key, params).format(**params)


def templates(lang: str, keys: list[str]) -> dict[str, str]:
    """The raw templates of `keys` in `lang` (for a page that fills the placeholders itself)."""
    return {key: _template(lang, key) for key in keys}


def feed_error(lang: str, error: str | None) -> str:
    """A feed's failure ("http_404: Not Found", as the poller stores it) as plain text in `lang`:
    the kind's text, with the poller's English detail in English only."""
    from bot.feeds.errors import split_feed_error

    kind, detail = split_feed_error(error or "")
    params: dict[str, object] = {"detail": detail or kind}
    if kind.startswith("http_") and kind[5:].isdigit():
        kind, params["status"] = "http", kind[5:]
    key = f"feed_error_{kind}"
    return t_plain(lang, key if key in EN else "feed_error_other", **params)
