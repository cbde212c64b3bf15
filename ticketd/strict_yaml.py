"""YAML for both of ticketd's files: no key written twice, no dates built, located errors for what it cannot read."""

from __future__ import annotations

import yaml
from yaml.constructor import ConstructorError


class DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice; PyYAML would keep the last one silently."""


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader, except that a repeated key is an error, as YAML 1.2 says it is.

    PyYAML keeps the last value, so a second `if:` in a route or a second
    `timers:` section would throw the first away without a word: a rules
    change that silently half-applied (PRODUCT.md, "Who uses it").
    """

    def construct_mapping(self, node, deep=False):
        first_seen: dict[str, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            if key in first_seen:
                raise DuplicateKeyError(
                    None, None, f"`{key}` is written twice in one mapping (first on line {first_seen[key]}); "
                    "keep one", key_node.start_mark)
            first_seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


# A scalar shaped like a date (`2026-13-01`, a route's name, a pattern) stays
# the text it was written as: PyYAML's timestamp constructor raised a bare
# ValueError for an impossible one, a traceback with no file or line, and
# turned a possible one into a date where text was meant. The fields that
# take dates (business_hours.holidays) read them, with a located error.
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def character_error(exc: yaml.reader.ReaderError, text: str, source: str) -> str:
    """One located line for a character YAML does not allow (YAML 1.1 section 5.1: control characters but
    tab and line breaks), which its reader refuses before parsing: a NUL or an escape pasted with a value,
    which most editors hide."""
    at = exc.position
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return (f"{source}:{line}:{column}: character U+{exc.character:04X} is not allowed in YAML (a control "
            "character, which most editors do not show); delete it")


def too_deep_error(source: str) -> str:
    """One line for a document nested deeper than PyYAML's composer, which recurses once per level, can read
    (RecursionError): brackets or indentation hundreds of levels deep, which no rules or settings file has."""
    return (f"{source}: not valid YAML: nested too deep to read (hundreds of levels of brackets or indentation); "
            "a file of settings or rules nests a few levels")


def not_utf8_error(exc: UnicodeDecodeError, raw: bytes, source: str) -> str:
    """One located line for the first byte of a file that is not UTF-8 (a file saved as Latin-1)."""
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"{source}:{line}:{column}: byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8"


def load(text: str):
    """The document in `text`; yaml.YAMLError (DuplicateKeyError for a repeated key) if it is not valid."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
