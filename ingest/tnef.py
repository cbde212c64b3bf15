"""The files and body inside a winmail.dat (TNEF, [MS-OXTNEF]), decoded with tnefparse. Pure: no I/O.

Outlook and Exchange send a mail's real attachments, and sometimes its body,
to outside recipients packed into one `application/ms-tnef` part. tnefparse
reads the format; this module checks a stream before handing it over (see
`_check_stream`), and turns what tnefparse finds into plain files.
"""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass, field

from tnefparse import TNEF
from tnefparse.mapi import IMESSAGE_SIG
from tnefparse.properties import MAPI_ATTACH_LONG_FILENAME, MAPI_ATTACH_METHOD, MAPI_ATTACH_MIME_TAG

from ingest.charsets import decode_bytes
from ingest.headers import MEDIA_TYPE

SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78 little-endian ([MS-OXTNEF] 2.1.3.1)
_LVL_ATTACHMENT = 0x02
_ATT_MAPI_PROPS = 0x9003         # attribute ids as tnefparse compares them: the low word only
_ATT_RECIP_TABLE = 0x9004
_ATT_ATTACHMENT = 0x9005
_ATTACH_BY_VALUE = 1             # PR_ATTACH_METHOD ([MS-OXPROPS] PidTagAttachMethod)
_ATTACH_EMBEDDED_MSG = 5
_PR_ATTACH_DATA_OBJ = 0x3701
# tnefparse copies the rest of the stream once per attribute it reads, so its
# cost grows with attributes x size: 160,000 one-byte attributes in 2 MB take
# it six seconds. A real winmail.dat has a handful of attributes per file; a
# stream that would make it copy more than this is refused unread.
_COPY_BUDGET = 1 << 32
# The stdlib's built-in table, the same on every machine (the module-level
# guess_type also answers from the machine's mime.types), and what it lacks
# that Outlook users attach most.
_TYPES = mimetypes.MimeTypes()
_MORE_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".msg": "application/vnd.ms-outlook", ".ics": "text/calendar", ".vcf": "text/vcard",
    ".odt": "application/vnd.oasis.opendocument.text", ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".7z": "application/x-7z-compressed", ".log": "text/plain",
}


class TnefError(ValueError):
    """The stream is not TNEF, or is damaged or too costly to read whole."""


class _CutShort(TnefError):
    """Part of the stream is missing: an attribute or property list runs past its end."""


@dataclass(frozen=True)
class TnefFile:
    name: str           # as the sender wrote it: not yet sanitised
    content_type: str
    data: bytes


@dataclass(frozen=True)
class TnefContents:
    files: list[TnefFile]
    body: str | None    # the plain body, else None
    html: str | None    # the HTML body, else None
    problems: list[str] = field(default_factory=list)  # what was left inside (an unreadable embedded message)


def is_tnef(data: bytes) -> bool:
    """Whether the bytes start with the TNEF signature."""
    return data[:4] == SIGNATURE


def tnef_contents(data: bytes, max_nesting: int = 4) -> TnefContents:
    """The files (those of attached Outlook items too, max_nesting deep) and body of a TNEF stream."""
    _check_stream(data, max_nesting)
    try:
        return _contents(TNEF(data), max_nesting)
    except TnefError:
        raise
    except Exception as exc:  # tnefparse raises whatever the damage makes it trip on
        raise TnefError(f"tnefparse: {type(exc).__name__}: {exc}") from exc


def _contents(parsed: TNEF, max_nesting: int) -> TnefContents:
    """What a stream tnefparse has read holds, when its checksums say it arrived whole."""
    _check_checksums(parsed)
    problems: list[str] = []
    files = _files(parsed, max_nesting, problems)
    codepage = parsed.codepage
    return TnefContents(files=files, body=_text(parsed.body, codepage), html=_text(parsed.htmlbody, codepage),
                        problems=problems)


def _check_checksums(parsed: TNEF) -> None:
    """Refuse a stream any of whose attributes fails its checksum ([MS-OXTNEF] 2.1.3.3): its data is not as sent."""
    bad = [obj for obj in parsed.objects if not obj.good_checksum]
    if bad:
        raise TnefError(f"{len(bad)} of {len(parsed.objects)} attributes fail their checksum (damaged or cut short)")


def _files(parsed: TNEF, nesting: int, problems: list[str]) -> list[TnefFile]:
    """The files attached by value, and those of attached Outlook items; what is left inside goes to problems."""
    files: list[TnefFile] = []
    for att in parsed.attachments:
        if _method(att) == _ATTACH_EMBEDDED_MSG or hasattr(att, "embed"):
            files += _embedded_files(att, nesting, problems)
        # An attachment by reference carries a path, not a file; one by value is a file even when empty,
        # as an empty MIME attachment is kept.
        elif att.data or _method(att) == _ATTACH_BY_VALUE:
            name = _file_name(att, parsed.codepage)
            files.append(TnefFile(name=name, content_type=_content_type(att, name), data=bytes(att.data or b"")))
    return files


def _embedded_files(att, nesting: int, problems: list[str]) -> list[TnefFile]:
    """The files of a message attached as an Outlook item, which is a TNEF stream of its own."""
    inner = getattr(att, "embed", None)
    if inner is None or nesting <= 0:
        problems.append("an attached Outlook item was not read (not a message, or nested too deep)")
        return []
    try:
        _check_checksums(inner)
    except TnefError as exc:
        problems.append(f"an attached Outlook item was not read: {exc}")
        return []
    return _files(inner, nesting - 1, problems)


def _method(att) -> int | None:
    """PR_ATTACH_METHOD: by value, by reference, embedded message, OLE object."""
    return next((p.data for p in att.mapi_attrs if p.name == MAPI_ATTACH_METHOD and isinstance(p.data, int)), None)


def _file_name(att, codepage: str | None) -> str:
    """PR_ATTACH_LONG_FILENAME when present, else the 8.3 attAttachTitle."""
    long = next((p.data for p in att.mapi_attrs if p.name == MAPI_ATTACH_LONG_FILENAME), None)
    if isinstance(long, str) and long.strip("\x00 "):
        return long.strip("\x00")
    try:
        return att.name
    except UnicodeDecodeError:
        # tnefparse reads the title as UTF-8; Outlook writes it in the message's codepage.
        return decode_bytes(bytes(att._name), codepage).strip("\x00")  # noqa: SLF001


def _content_type(att, name: str) -> str:
    """The MIME type Outlook recorded (PR_ATTACH_MIME_TAG), else one guessed from the name."""
    tag = next((p.data for p in att.mapi_attrs if p.name == MAPI_ATTACH_MIME_TAG), None)
    if isinstance(tag, str) and MEDIA_TYPE.fullmatch(tag.strip().lower()):
        return tag.strip().lower()
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MORE_TYPES.get(suffix) or _TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"


def _text(value: str | bytes | None, codepage: str | None) -> str | None:
    """A body as text (bytes in the stream's codepage), or None when it holds nothing to read."""
    if isinstance(value, bytes):
        value = decode_bytes(value, codepage)
    value = (value or "").replace("\x00", "").replace("\r\n", "\n")
    return value if value.strip() else None


# ---------------------------------------------------------------- the stream check
#
# tnefparse trusts every count it reads: a property list declaring four billion
# properties (or a multi-valued property four billion values) makes it loop
# that often, logging each missing one, whatever the stream's size; a
# 54-byte stream kept it busy for minutes. So the stream is walked first, the
# way tnefparse will walk it, and refused when a count promises more than the
# bytes hold or an attribute runs past the end (a stream cut short).

_FIXED_SIZES = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0007: 8,
                0x0006: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16}  # [MS-OXCDATA] 2.11.1
_VARIABLE = (0x001E, 0x001F, 0x000D, 0x0102, 0x0000)           # strings, object, binary, unspecified
_MULTI_VALUED = 0x1000
_NAMED = 0x8000


def _u16(data: bytes, offset: int) -> int:
    return struct.unpack_from("<H", data, offset)[0]


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]


class _Budget:
    """Bytes tnefparse may copy while reading one stream, embedded messages included."""

    def __init__(self) -> None:
        self.left = _COPY_BUDGET

    def spend(self, copied: int) -> None:
        self.left -= copied
        if self.left < 0:
            raise TnefError("too many attributes to read")


def _check_stream(data: bytes, nesting: int, budget: _Budget | None = None, whole: bool = True) -> None:
    """Raise TnefError unless tnefparse can read data in time proportional to its size (and, if whole, all of it).

    An attached Outlook item is checked only for cost: tnefparse reads it
    even when it is cut short (it strips the NULs that end one), and then
    its checksums tell; see `_embedded_files`.
    """
    if not is_tnef(data):
        raise TnefError("no TNEF signature")
    budget = budget or _Budget()
    offset = 6
    while offset + 12 < len(data):  # tnefparse's own loop condition
        budget.spend(len(data) - offset)
        level, attr, length = data[offset], _u16(data, offset + 1), _u32(data, offset + 5)
        size = min(len(data) - offset, 9 + length + 2)  # tnefparse's framing: a cut attribute ends the stream
        try:
            # A cut attribute is still read by tnefparse, as far as it goes: checked all the same.
            _check_attribute(data[offset + 9:offset + size - 2], level, attr, nesting, budget)
            if size < 9 + length + 2:
                raise _CutShort(f"attribute at byte {offset} runs past the end")
        except (_CutShort, struct.error) as exc:
            if whole:
                raise _CutShort(f"cut short: {exc}") from exc
        offset += size
    if whole and data[offset:].strip(b"\x00\r\n "):
        # tnefparse ignores the last few bytes when they cannot hold an attribute: part of one.
        raise _CutShort(f"cut short: {len(data) - offset} bytes after the last attribute")


def _check_attribute(value: bytes, level: int, attr: int, nesting: int, budget: _Budget) -> None:
    """Check the attributes tnefparse reads property lists from, as it tells them apart."""
    if level == _LVL_ATTACHMENT and attr == _ATT_ATTACHMENT:
        walk = _check_props(value, 0)
        for prop_id, items in walk.found:
            if prop_id == _PR_ATTACH_DATA_OBJ:
                _check_embedded(items, nesting, budget)
        walk.raise_if_cut()
    elif level != _LVL_ATTACHMENT and attr == _ATT_MAPI_PROPS:
        _check_props(value, 0).raise_if_cut()
    elif level != _LVL_ATTACHMENT and attr == _ATT_RECIP_TABLE:
        _check_recipients(value)


def _check_recipients(value: bytes) -> None:
    """A recipient table: a row count, then one property list per row."""
    try:
        rows, offset = _u32(value, 0), 4
        if rows > len(value) // 4:
            raise TnefError(f"recipient table promises {rows} rows")
        for _ in range(rows):
            walk = _check_props(value, offset)
            walk.raise_if_cut()
            offset = walk.offset
    except (_CutShort, struct.error) as exc:
        # tnefparse reads the next row from wherever a broken one stopped, and
        # trusts the count it finds there: such a table is refused outright.
        raise TnefError(f"recipient table damaged: {exc}") from exc


def _check_embedded(items: list[bytes], nesting: int, budget: _Budget) -> None:
    """Check an attached Outlook item, which tnefparse reads at once, as deep as they nest."""
    # tnefparse strips trailing NULs from each value and parses what follows
    # IID_IMessage, so that is the stream to check.
    data = b"".join(item.rstrip(b"\x00") for item in items)
    if data.startswith(IMESSAGE_SIG):
        if nesting <= 0:
            raise TnefError("attached Outlook items nested too deep")
        _check_stream(data[len(IMESSAGE_SIG):], nesting - 1, budget, whole=False)


@dataclass
class _Walk:
    """How far a property list was read, what it held, and why reading stopped early, if it did."""
    offset: int
    found: list[tuple[int, list[bytes]]] = field(default_factory=list)  # (property id, variable-length items)
    cut: str | None = None

    def raise_if_cut(self) -> None:
        if self.cut:
            raise _CutShort(self.cut)


def _check_props(data: bytes, offset: int) -> _Walk:
    """Walk a MAPI property list ([MS-OXTNEF] 2.1.3.4) as tnefparse's decode_mapi does, and stop where it stops.

    Every property tnefparse keeps is in `found` even when the list breaks
    off after it: tnefparse reads an attached Outlook item as soon as it has
    the property, so that item must be checked whatever follows.
    """
    count = _u32(data, offset)
    offset += 4
    if count > (len(data) - offset) // 4:
        raise TnefError(f"property list promises {count} properties in {len(data) - offset} bytes")
    walk = _Walk(offset)
    try:
        for _ in range(count):
            if not _check_prop(data, walk):
                break  # tnefparse stops reading the list at a type it does not know
            if walk.offset > len(data):
                walk.cut = "property list runs past its attribute"
                break
    except struct.error as exc:
        walk.cut = f"property list cut short: {exc}"
    return walk


def _check_prop(data: bytes, walk: _Walk) -> bool:
    """Step over one property (all its values); False at a type tnefparse cannot read."""
    offset = walk.offset
    prop_type, prop_id = _u16(data, offset), _u16(data, offset + 2)
    offset += 4
    if prop_id >= _NAMED:  # a named property: GUID, kind, then an id or a padded name
        kind = _u32(data, offset + 16)
        offset += 20
        offset += 4 if kind == 0 else 4 + _padded(_u32(data, offset))
    values = None
    if prop_type & _MULTI_VALUED:
        prop_type ^= _MULTI_VALUED
        values = _u32(data, offset)
        offset += 4
        if values > (len(data) - offset) // 2:
            raise TnefError(f"property promises {values} values in {len(data) - offset} bytes")
    if prop_type not in _FIXED_SIZES and prop_type not in _VARIABLE:
        return False
    for _ in range(values or 1):  # tnefparse keeps each value of a multi-valued property apart
        offset, items = _check_value(data, offset, prop_type, multi=values is not None)
        walk.found.append((prop_id, items))
        walk.offset = offset
    if (values or 1) % 2 and prop_type in (0x0002, 0x000B):
        offset += 2  # 16-bit values are padded to 32 bits
    walk.offset = offset
    return True


def _check_value(data: bytes, offset: int, prop_type: int, multi: bool) -> tuple[int, list[bytes]]:
    """Step over one value; a string or binary one is returned (as its items)."""
    if prop_type in _FIXED_SIZES:
        return offset + _FIXED_SIZES[prop_type], []
    count = 1
    if not multi:  # a single-valued string or binary still says how many items it holds
        count = _u32(data, offset)
        offset += 4
        if count > (len(data) - offset) // 4:
            raise TnefError(f"property promises {count} values in {len(data) - offset} bytes")
    items: list[bytes] = []
    for _ in range(count):
        length = _padded(_u32(data, offset))
        items.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return offset, items


def _padded(length: int) -> int:
    return length + (-length % 4)
