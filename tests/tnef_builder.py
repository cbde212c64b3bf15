"""A small TNEF (winmail.dat) writer for tests, after [MS-OXTNEF]: tnefparse only reads the format.

Section 2.1.3.1: the stream is the signature 0x223E9F78 and a 16-bit legacy
key, then attributes. Section 2.1.3.3: each attribute is a level byte
(1 message, 2 attachment), a 32-bit id (the attribute's type in the high
word), a 32-bit length, the data and a 16-bit checksum (the data's bytes
summed modulo 65536). Section 2.1.3.4: attMAPIProps and attAttachment hold a
MAPI property list: a count, then per property a 16-bit type, a 16-bit id and
the value, variable-length values as a count of 1, a length and the bytes
padded to a multiple of four.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = 0x223E9F78
LVL_MESSAGE = 0x01
LVL_ATTACHMENT = 0x02

# Attribute ids, section 2.1.3.3.1 (type << 16 | id).
ATT_TNEF_VERSION = 0x00089006
ATT_OEM_CODEPAGE = 0x00069007
ATT_MESSAGE_CLASS = 0x00078008
ATT_BODY = 0x0002800C
ATT_MAPI_PROPS = 0x00069003
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACHMENT = 0x00069005

# MAPI property types and ids ([MS-OXCDATA] 2.11.1, [MS-OXPROPS]).
PT_LONG = 0x0003
PT_OBJECT = 0x000D
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_BINARY = 0x0102
PR_BODY = 0x1000
PR_BODY_HTML = 0x1013
PR_INTERNET_CPID = 0x3FDE
PR_ATTACH_DATA_OBJ = 0x3701
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E

ATTACH_BY_VALUE = 1
ATTACH_EMBEDDED_MSG = 5
# An embedded message's PR_ATTACH_DATA_OBJ starts with IID_IMessage ([MS-OXTNEF] 2.1.3.4.1).
IID_IMESSAGE = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"


def attribute(level: int, attr_id: int, data: bytes) -> bytes:
    """One attribute with its length and checksum."""
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _padded(data: bytes) -> bytes:
    return struct.pack("<II", 1, len(data)) + data + b"\x00" * (-len(data) % 4)


def prop_long(prop_id: int, value: int) -> bytes:
    return struct.pack("<HHi", PT_LONG, prop_id, value)


def prop_string8(prop_id: int, text: str, codepage: str = "cp1252") -> bytes:
    return struct.pack("<HH", PT_STRING8, prop_id) + _padded(text.encode(codepage) + b"\x00")


def prop_unicode(prop_id: int, text: str) -> bytes:
    return struct.pack("<HH", PT_UNICODE, prop_id) + _padded(text.encode("utf-16-le") + b"\x00\x00")


def prop_binary(prop_id: int, data: bytes, prop_type: int = PT_BINARY) -> bytes:
    return struct.pack("<HH", prop_type, prop_id) + _padded(data)


def prop_list(*props: bytes) -> bytes:
    return struct.pack("<I", len(props)) + b"".join(props)


@dataclass(frozen=True)
class File:
    title: str                    # attAttachTitle: the 8.3 name
    data: bytes
    long_name: str | None = None  # PR_ATTACH_LONG_FILENAME
    mime_tag: str | None = None   # PR_ATTACH_MIME_TAG


def _rend_data() -> bytes:
    # RENDDATA: atyp (1 = file), position (-1: not rendered in the text), width, height, flags.
    return struct.pack("<HiHHI", 1, -1, 0, 0, 0)


def file_attributes(item: File) -> bytes:
    """attAttachRendData, attAttachTitle, attAttachData and an attAttachment property block."""
    props = [prop_long(PR_ATTACH_METHOD, ATTACH_BY_VALUE)]
    if item.long_name is not None:
        props.append(prop_unicode(PR_ATTACH_LONG_FILENAME, item.long_name))
    if item.mime_tag is not None:
        props.append(prop_string8(PR_ATTACH_MIME_TAG, item.mime_tag))
    return (attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, _rend_data())
            + attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, item.title.encode("cp1252") + b"\x00")
            + attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, item.data)
            + attribute(LVL_ATTACHMENT, ATT_ATTACHMENT, prop_list(*props)))


def embedded_attributes(title: str, inner: bytes) -> bytes:
    """An attachment that is a message of its own (Outlook's "attach item"), given as a TNEF stream."""
    props = prop_list(prop_long(PR_ATTACH_METHOD, ATTACH_EMBEDDED_MSG),
                      prop_binary(PR_ATTACH_DATA_OBJ, IID_IMESSAGE + inner, PT_OBJECT))
    return (attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, _rend_data())
            + attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, title.encode("cp1252") + b"\x00")
            + attribute(LVL_ATTACHMENT, ATT_ATTACHMENT, props))


def tnef(files: list[File] = (), *, body: str | None = None, html: str | None = None,
         embedded: list[tuple[str, bytes]] = (), key: int = 0x4A21) -> bytes:
    """A winmail.dat as Outlook writes one: version, codepage, class, message properties, then the files."""
    out = struct.pack("<IH", SIGNATURE, key)
    out += attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1252, 0))
    out += attribute(LVL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00")
    props = []
    if body is not None:
        props.append(prop_unicode(PR_BODY, body))
    if html is not None:
        props += [prop_long(PR_INTERNET_CPID, 65001), prop_binary(PR_BODY_HTML, html.encode("utf-8"))]
    if props:
        out += attribute(LVL_MESSAGE, ATT_MAPI_PROPS, prop_list(*props))
    for item in files:
        out += file_attributes(item)
    for title, inner in embedded:
        out += embedded_attributes(title, inner)
    return out
