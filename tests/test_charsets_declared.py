"""Text decoded the way the sender declared it: HTML <meta> charsets, WHATWG supersets, declared before guessed."""

from __future__ import annotations

import pytest

from ingest.charsets import decode_bytes, html_meta_charset
from ingest.parse import parse_mail


def _mail(headers: str, body: bytes) -> bytes:
    """A mail as it comes off the wire: CRLF header lines, then the body bytes as sent."""
    return headers.strip("\n").encode().replace(b"\n", b"\r\n") + b"\r\n\r\n" + body


def _html_mail(content_type: str, markup: bytes) -> bytes:
    return _mail(f"From: a@example.com\nSubject: t\nMIME-Version: 1.0\nContent-Type: {content_type}\n"
                 "Content-Transfer-Encoding: 8bit", markup)


# ------------------------------------------------------------ the HTML's own declaration

RUSSIAN = "Здравствуйте! Принтер не печатает, счёт 42 не пришёл."
JAPANESE = "お問い合わせありがとうございます。請求書①を髙橋が送ります。"


@pytest.mark.parametrize("text", [RUSSIAN, "ОК, жду", "Да"])  # short replies read as cp1252 when guessed
def test_meta_charset_decides_an_html_part_without_a_mime_charset(text):
    markup = b'<html><head><meta charset="windows-1251"></head><body><p>' + text.encode("cp1251") + b"</p>"
    parsed = parse_mail(_html_mail("text/html", markup))
    assert parsed.text == text
    assert text in (parsed.html or "")


def test_http_equiv_meta_in_shift_jis():
    markup = (b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
              b"<title>x</title></head><body><div>" + JAPANESE.encode("cp932") + b"</div></body></html>")
    assert parse_mail(_html_mail("text/html", markup)).text == JAPANESE


def test_meta_decides_when_mime_says_us_ascii_over_8bit_bytes():
    markup = b"<meta content='text/html;charset=koi8-r' http-equiv=content-type><p>" + RUSSIAN.encode("koi8-r")
    assert parse_mail(_html_mail("text/html; charset=us-ascii", markup)).text == RUSSIAN


def test_meta_decides_when_the_mime_charset_does_not_fit():
    # UTF-8 declared, Shift_JIS sent (a gateway relabelled the part but not the document).
    markup = b'<meta charset="shift_jis"><p>' + JAPANESE.encode("cp932")
    assert parse_mail(_html_mail("text/html; charset=utf-8", markup)).text == JAPANESE


def test_a_mime_charset_that_fits_wins_over_a_contradicting_meta():
    # RFC 2046 section 4.1.2: the charset parameter is the part's charset; the
    # KOI8-R bytes would be mojibake read as the meta's windows-1251.
    markup = b'<html><head><meta charset="windows-1251"></head><body>' + RUSSIAN.encode("koi8-r")
    assert parse_mail(_html_mail("text/html; charset=koi8-r", markup)).text == RUSSIAN


def test_utf8_comes_before_a_meta_declaration():
    markup = b'<meta charset="windows-1251"><p>' + RUSSIAN.encode()
    assert parse_mail(_html_mail("text/html", markup)).text == RUSSIAN


@pytest.mark.parametrize("head, codec", [
    (b'<meta charset="windows-1251">', "cp1251"),
    (b"<META CHARSET=KOI8-R>", "koi8-r"),
    (b"<meta charset='gb2312'/>", "gb18030"),
    (b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-KR">', "cp949"),
    (b'<meta content="text/html; charset=\'iso-8859-1\'" http-equiv="content-type">', "cp1252"),
    (b'<meta charset="utf-16le">', "utf-8"),                                   # a prescan reads no UTF-16
    (b'<meta charset="x-user-defined">', "cp1252"),
    (b'<meta content="text/html; charset=koi8-r">', None),                    # content without the pragma
    (b'<meta http-equiv="refresh" content="5; charset=koi8-r">', None),
    (b'<!-- <meta charset="koi8-r"> --><meta charset="cp1251">', "cp1251"),  # a comment is no meta
    (b'<div title="<meta charset=koi8-r>"><meta charset="cp1251">', "cp1251"),  # nor an attribute value
    (b'<meta charset="no-such-charset"><meta charset="cp1251">', "cp1251"),  # unknown: scanning goes on
    (b"<metadata charset=koi8-r>", None),
    (b" " * 1024 + b'<meta charset="koi8-r">', None),                        # past the first 1024 bytes
])
def test_prescan_finds_what_browsers_find(head, codec):
    assert html_meta_charset(head + b"<p>text") == codec


# ------------------------------------------------------------ declared legacy charsets read as their supersets

def _plain(charset: str, body: bytes) -> str:
    return parse_mail(_mail(f"From: a@example.com\nSubject: t\nMIME-Version: 1.0\n"
                            f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit",
                            body)).text


def test_gb2312_label_reads_gbk_and_gb18030_characters():
    # '𠀀' (U+20000) exists only in GB18030's four-byte range; 0x80 is the
    # euro sign in GBK as Windows writes it (WHATWG gb18030 decoder).
    body = "发票金额".encode("gb2312") + b" \x80100 " + "𠀀".encode("gb18030") + " 镕".encode("gbk")
    assert _plain("gb2312", body) == "发票金额 €100 𠀀 镕"


def test_shift_jis_label_reads_nec_and_ibm_extensions():
    # 0x8740 is NEC row 13 (①), 0xFBFC the IBM extension 髙, 0xEEE0 its NEC-selected copy.
    assert _plain("Shift_JIS", b"\x87\x40 \xfb\xfc\x8b\xb4 \xee\xe0") == "① 髙橋 髙"


def test_ks_c_5601_1987_reads_unified_hangul():
    # 똠 is not in KS X 1001: only Windows' Unified Hangul Code (cp949) has it.
    text = "안녕하세요, 똠방각하 주문 문의입니다."
    assert _plain("ks_c_5601-1987", text.encode("cp949")) == text
    assert _plain("euc-kr", text.encode("cp949")) == text


def test_iso_8859_1_label_reads_cp1252_punctuation():
    body = b"\x93Quoted\x94 \x80 5 \x96 it\x92s \x85 na\xefve"
    assert _plain("iso-8859-1", body) == "“Quoted” € 5 – it’s … naïve"
    assert _plain("latin1", body) == "“Quoted” € 5 – it’s … naïve"


@pytest.mark.parametrize("charset, text, codec", [
    ("big5", "價格 €", "cp950"),                  # the euro sign is cp950's, not big5hkscs'
    ("tis-620", "สวัสดีครับ €", "cp874"),
    ("iso-8859-9", "Teşekkürler, fatura €", "cp1254"),
])
def test_other_legacy_labels_read_as_their_supersets(charset, text, codec):
    assert _plain(charset, text.encode(codec)) == text


def test_us_ascii_label_with_8bit_bytes_reads_cp1252_first():
    assert _plain("us-ascii", b"It\x92s \x80 5") == "It’s € 5"


# ------------------------------------------------------------ raw 8-bit headers follow the declared charset

@pytest.mark.parametrize("charset, codec, subject, name", [
    ("gb2312", "gb18030", "问题", "王芳"),
    ("gb2312", "gb18030", "密码", "李明"),
    ("GBK", "gb18030", "中文", "张伟"),
    ("shift_jis", "cp932", "返品", "佐藤"),
    ("Shift_JIS", "cp932", "緊急", "髙橋"),
    ("ks_c_5601-1987", "cp949", "문의", "김철수"),
])
def test_short_raw_8bit_headers_read_in_the_declared_charset(charset, codec, subject, name):
    # Two CJK characters are four bytes: as cp1252 or cp1251 they are four
    # plausible letters ("ÎÊÌâ"), or one UTF-8 character and a stray byte.
    raw = (b"From: " + name.encode(codec) + b" <sender@example.com>\r\nSubject: " + subject.encode(codec)
           + f"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\r\nok\r\n".encode())
    parsed = parse_mail(raw)
    assert (parsed.subject, parsed.from_name, parsed.from_addr) == (subject, name, "sender@example.com")


def test_declared_charset_in_a_later_part_reads_the_headers():
    body = ("--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsee attached\r\n"
            "--b\r\nContent-Type: text/html; charset=gb2312\r\n\r\n<p>".encode() + "退款".encode("gb2312")
            + b"</p>\r\n--b--\r\n")
    raw = (b"From: a@example.com\r\nSubject: " + "退款".encode("gb2312")
           + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + body)
    assert parse_mail(raw).subject == "退款"


def test_raw_headers_without_any_declared_charset_are_still_guessed():
    raw = b"From: a@example.com\r\nSubject: " + "тест тест".encode("koi8-r") + b"\r\n\r\nx\r\n"
    assert parse_mail(raw).subject == "тест тест"


def test_latin_declared_mail_keeps_its_headers_plausible():
    # A single-byte declaration fits any bytes, so it does not overrule the
    # reading of a cp1251 header that plainly is Russian.
    raw = (b"From: a@example.com\r\nSubject: " + "привет мир".encode("cp1251")
           + b"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nhello\r\n")
    assert parse_mail(raw).subject == "привет мир"


def test_decode_bytes_keeps_utf8_first_then_declared_then_guessed():
    hints = ("gb2312",)
    assert decode_bytes("问题".encode(), None, hints) == "问题"                  # strict UTF-8 first
    assert decode_bytes("问题".encode("gb2312"), None, hints) == "问题"          # then the declared charset
    assert decode_bytes("привет мир".encode("cp1251"), None, ()) == "привет мир"  # then a guess
