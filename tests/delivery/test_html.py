"""check_telegram_html, the one judge of Telegram HTML, against the Bot API's documented rules.

https://core.telegram.org/bots/api#html-style: the tags listed there, `<`, `>` and `&` that
are not part of a tag or an entity written as entities, only &lt; &gt; &amp; &quot; and
numeric entities, pre/code hold no other entity, no link in a link, no quote in a quote;
1-4096 characters after entity parsing.
"""

from __future__ import annotations

import pytest

from bot.delivery.html import (
    TelegramHTMLError,
    check_telegram_html,
    escape,
    utf16_len,
    visible_length,
    visible_text,
)

VALID = [
    "plain text",
    "<b>bold</b> <strong>strong</strong> <i>i</i> <em>em</em> <u>u</u> <ins>ins</ins>",
    "<s>s</s> <strike>strike</strike> <del>del</del> <tg-spoiler>secret</tg-spoiler>",
    '<span class="tg-spoiler">secret</span>',
    '<a href="https://www.info.gov.hk/gia/general/202611/28/P1.htm?a=1&amp;b=2">link</a>',
    "<b>bold <i>and italic <u>and underlined</u></i></b>",
    '<pre><code class="language-python">x = 1 &lt; 2</code></pre>',
    "<code>a &amp;&amp; b</code>",
    "<blockquote>quoted</blockquote> <blockquote expandable>long</blockquote>",
    '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
    '<tg-time unix="1647531900" format="wDT">22:45 tomorrow</tg-time>',
    "&lt;p&gt; is escaped &quot;quoted&quot; &#169; &#x1F600;",
    "Tom &amp; Jerry",
    '<a href="tg://user?id=123456789">inline mention of a user</a>',
    "<b>bold <s>strike <tg-spoiler>spoiler</tg-spoiler></s></b>",  # documented nesting
    "<pre>pre-formatted fixed-width code block</pre> <code>inline</code>",
    "Price > 5 and 3 > 2",  # a bare > is unambiguous: Telegram shows it
    "&#x1F600; &#128512;",
    "<B>upper-case start tags</b>",
    "海關 " + "x" * 4093,  # 4096 UTF-16 units
    "😀" * 2048,  # 4096 UTF-16 units (each emoji counts 2)
]

INVALID = [
    ("<p>para</p>", "unsupported tag <p> at character 1"),
    ("a <br> b", "unsupported tag <br> at character 3"),
    ("&nbsp;x", "unsupported entity &nbsp; at character 1"),
    ("<b>open", "tag <b> is never closed"),
    ("<b><i>x</b></i>", "closing tag </b> at character 8 does not match the open <i>"),
    ("x</b>", "closing tag </b> at character 2 has no opening tag"),
    ("<B>x</B>", "closing tag </B> at character 5 does not match the open <b>"),
    ("1 < 2", "a bare '<' at character 3"),
    ('<span class="x">s</span>', 'needs class="tg-spoiler"'),
    ("<a>no href</a>", 'tag <a> at character 1 needs href="…"'),
    ('<a href="x" target="_blank">t</a>', "attribute 'target' is not allowed in tag <a>"),
    ("<b", "tag <b> at character 1 is not closed with '>'"),
    ("<code><b>x</b></code>", "inside <code>"),
    ("<blockquote><blockquote>x</blockquote></blockquote>", "inside another <blockquote>"),
    ("<b> </b>", "the message has no text"),
    ("", "the message has no text"),
    ("x" * 4097, "the message is 4097 characters"),
    ("😀" * 2049, "the message is 4098 characters"),
    ("&#0;", "invalid character reference"),
    ("Fish & chips", "a bare '&' at character 6: write &amp; for a literal &"),
    ("AT&T", "a bare '&' at character 3"),
    ("&amp no semicolon", "a bare '&' at character 1"),  # Telegram would guess "&"
    ("&copy; 2026", "unsupported entity &copy; at character 1"),
    ('<a href="https://x.org/?a=1&b=2">x</a>', "a bare '&'"),
    ("<pre><b>x</b></pre>", "inside <pre>"),
    ('<a href="https://a.org"><a href="https://b.org">x</a></a>', "inside another <a>"),
    ("<tg-emoji>👍</tg-emoji>", 'needs emoji-id="<number>"'),
    ("<tg-time>now</tg-time>", 'needs unix="<timestamp>"'),
]


@pytest.mark.parametrize("text", VALID)
def test_telegram_accepts_valid_html(text):
    check_telegram_html(text)


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_html_is_refused_with_a_one_line_reason(text, reason):
    with pytest.raises(TelegramHTMLError) as caught:
        check_telegram_html(text)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_each_refusal_names_a_reply_in_both_languages(text, reason):
    from bot.i18n import EN, ZH, t
    from tests.doubles.telegram_api import parse_html

    with pytest.raises(TelegramHTMLError) as caught:
        check_telegram_html(text)
    error = caught.value
    assert error.key in EN and error.key in ZH and error.key != "html_invalid"
    for lang in ("en", "zh"):
        rendered = t(lang, error.key, **error.params)
        plain, _ = parse_html(rendered)  # valid Telegram HTML itself, whatever it quotes
        assert plain and "{" not in plain
    assert t("zh", error.key, **error.params) != t("en", error.key, **error.params)


def test_escaped_feed_text_always_passes():
    text = 'Customs <seize> "goods" & P&amp;L </b> <p>'
    check_telegram_html(escape(text))
    assert utf16_len("a😀海") == 4


def test_visible_length_counts_what_telegram_counts():
    assert visible_text('<b>Fish &amp; chips</b> <a href="https://x.org">&quot;x&quot;</a>') == (
        'Fish & chips "x"'
    )
    assert visible_length("&lt;😀&gt;") == 4  # entities decoded, the emoji counts 2
    assert visible_length(escape('&"<>' * 100)) == 400  # 2,000 characters of HTML
    with pytest.raises(TelegramHTMLError):
        visible_length("Fish & chips")


async def test_the_double_refuses_exactly_what_the_checker_refuses():
    from telegram.error import BadRequest

    from tests.doubles.telegram_api import BotAPIDouble

    async with BotAPIDouble() as api, api.ptb_bot() as bot:
        for text in VALID:
            await bot.send_message(1, text, parse_mode="HTML")
        for text, reason in INVALID:
            if not text:
                continue  # PTB refuses an empty text before sending it
            with pytest.raises(BadRequest) as caught:
                await bot.send_message(1, text, parse_mode="HTML")
            told = caught.value.message.lower()  # PTB capitalize()s Telegram's description
            assert reason.lower() in told or "too long" in told or "empty" in told
