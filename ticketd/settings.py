"""Typed daemon settings from ticketd.yaml, overridable by TICKETD_* variables."""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ingest.headers import a_label_domain
from ticketd import strict_yaml

log = logging.getLogger("ticketd.settings")

DEFAULT_ACCEPT_WORDS = [
    "accept", "accepted", "yes", "ok", "okay",
    "да", "принимаю", "ок", "хорошо", "согласен", "согласна", "принято",   # Russian
    "sí", "si", "acepto", "vale", "de acuerdo",    # Spanish
    "sì", "accetto", "va bene", "certo",           # Italian
    "接受", "是", "是的", "好", "好的", "可以", "同意",   # Chinese
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# The SQLAlchemy drivers ticketd ships and is tested with (store/db.py): any other would fail at the first
# command with a driver's traceback (mysql:// wants MySQLdb, a bare postgresql:// wants psycopg2).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
# dramatiq prefixes every Redis key with the namespace and a colon: no colon,
# space or glob character in it, so one desk's keys never match another's.
REDIS_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A sweep or a poll loop waits this long at least: 0 would spin a core at 100%.
MIN_LOOP_SECONDS = 0.05
# Settings._proof_has_ids_to_trust.
NO_TRUSTED_IDS = ("{key} needs the authserv-ids of our own MTA (the first word of the Authentication-Results "
                  "it adds) in agent_auth.trusted_authserv_ids")


# What may not stand in an address written bare: a display name's or a list's marks, or a space.
_NOT_IN_AN_ADDRESS = re.compile(r'[\s<>(),;:"\[\]\\]')


def address_problem(value: str) -> str | None:
    """Why `value` is not one bare address (local@domain), or None: the check the settings make of addresses.

    Not an RFC 5322 parser: quoted local parts and address literals,
    which no support desk uses, are refused with the display names
    (`Support <support@example.com>`) and lists that are the real slips.
    """
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return f"no @ in {value!r}"
    if "<" in text and ">" in text:
        return f"write {text[text.index('<') + 1:text.rindex('>')].strip()} alone, without a name or brackets"
    if match := _NOT_IN_AN_ADDRESS.search(text):
        return f"{match.group()!r} in {value!r} (write the address alone: no name, brackets or second address)"
    if not local or "@" in local:
        return f"{value!r} needs one @ with a name before it"
    if not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return f"{value!r} has no domain after the @"
    return None


class _Int(int):
    """A YAML integer that remembers how it was written, for a text setting such as `password: 0123`."""
    text: str


class _Float(float):
    """A YAML float that remembers how it was written (`secret_key: 1e5` stays `1e5`)."""
    text: str


class _SettingsLoader(strict_yaml.UniqueKeyLoader):
    """ticketd.yaml and TICKETD_* values, read the way a person means them.

    PyYAML follows YAML 1.1: `yes`, `no`, `on`, `off` are booleans and a date
    is a date, so `accept_words: [yes, ok]` failed as "not a valid string".
    Here only true/false are booleans (as in YAML 1.2), and numbers keep the
    text they were written as: a digits-only password is a text setting's
    value as written (`0123`, not 83). A boolean setting still takes yes/no:
    pydantic reads those words itself.
    """

    def construct_yaml_int(self, node):
        """An int that keeps its source text (see _as_typed)."""
        number = _Int(super().construct_yaml_int(node))
        number.text = node.value
        return number

    def construct_yaml_float(self, node):
        """A float that keeps its source text (see _as_typed)."""
        number = _Float(super().construct_yaml_float(node))
        number.text = node.value
        return number


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
_SettingsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in strict_yaml.UniqueKeyLoader.yaml_implicit_resolvers.items()}
_SettingsLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_SettingsLoader.add_constructor("tag:yaml.org,2002:int", _SettingsLoader.construct_yaml_int)
_SettingsLoader.add_constructor("tag:yaml.org,2002:float", _SettingsLoader.construct_yaml_float)


def _load_yaml(text: str) -> Any:
    """The YAML document in `text`, read by _SettingsLoader; yaml.YAMLError if it is not valid."""
    return yaml.load(text, Loader=_SettingsLoader)   # a SafeLoader: it builds no Python objects


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_truth_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """`true` under a number is a slip, not 1: only true and false are booleans (docs/settings.md), and
        pydantic would take them as 1 and 0 (`smtp.max_message_bytes: true`: a one-byte limit)."""
        kinds = _kinds(cls.model_fields[info.field_name].annotation)
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise ValueError(f"a number is wanted here, not {str(value).lower()}")
        return value


class SmtpSettings(_Strict):
    listen: str = "127.0.0.1:2525"
    max_message_bytes: int = Field(default=26_214_400, gt=0)
    # Extra recipient addresses we accept besides support_address (and its
    # +token forms). Anything else is refused with 550 at RCPT.
    extra_addresses: list[str] = Field(default_factory=list)

    @field_validator("extra_addresses")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        """Each one address: `a@x, b@x` in one item would be an address nobody can write to."""
        for index, value in enumerate(values):
            if (problem := address_problem(value)) is not None:
                raise ValueError(f"smtp.extra_addresses[{index}] must be an address like help@example.com: "
                                 f"{problem}")
        return values

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        """`host:port` with a port the receiver can bind, checked here rather than as a traceback at startup."""
        _host, colon, port = value.rpartition(":")
        # isascii: str.isdigit() also takes "²", which int() refuses.
        if not colon or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise ValueError(f"smtp.listen must be host:port with a port from 1 to 65535, e.g. 127.0.0.1:2525; "
                             f"got {value!r}")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class ImapSettings(_Strict):
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    ssl: bool = True                # implicit TLS (imaps, port 993; RFC 8314 prefers it)
    starttls: bool = False          # plain port (143), then STARTTLS before login; with ssl: false
    ssl_verify: bool = True
    username: str
    # `password`, or an OAuth 2.0 access token (SASL XOAUTH2 or OAUTHBEARER)
    # printed by `oauth2_token_command` at each login (ingest/imap_auth.py).
    auth: Literal["password", "xoauth2", "oauthbearer"] = "password"
    password: str | None = None
    oauth2_token_command: str | None = None
    folder: str = "INBOX"
    poll_seconds: float = Field(default=30, ge=MIN_LOOP_SECONDS, allow_inf_nan=False)
    move_to: str | None = None      # move processed mail here instead of flagging \Seen
    idle: bool = True
    max_message_bytes: int = Field(default=26_214_400, gt=0)  # larger mail stays unseen in the folder

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> ImapSettings:
        if self.ssl and self.starttls:
            raise ValueError("imap: choose `ssl: true` (implicit TLS, usually port 993) or "
                             "`starttls: true` with `ssl: false` (usually port 143), not both")
        return self

    @model_validator(mode="after")
    def _credentials_for_auth(self) -> ImapSettings:
        if self.auth == "password":
            if self.password is None:
                raise ValueError("imap: `password` is required with `auth: password` (or set `auth: xoauth2` "
                                 "and `oauth2_token_command`)")
            if self.oauth2_token_command is not None:
                raise ValueError("imap: `oauth2_token_command` needs `auth: xoauth2` or `auth: oauthbearer`")
        else:
            if not (self.oauth2_token_command or "").strip():
                raise ValueError(f"imap: `auth: {self.auth}` needs `oauth2_token_command`, a command that "
                                 "prints a fresh access token")
            if self.password is not None:
                raise ValueError(f"imap: `auth: {self.auth}` logs in with a token: remove `password`")
        return self

    @model_validator(mode="after")
    def _moves_elsewhere(self) -> ImapSettings:
        # Mail moved into the folder polled comes back under a new UID above
        # the cursor, and would be taken and moved again without end. INBOX
        # is INBOX in any case (RFC 3501 section 5.1); other names are as written.
        if self.move_to is not None and _folder_name(self.move_to) == _folder_name(self.folder):
            raise ValueError(f"imap: `move_to: {self.move_to}` is the folder polled (`folder: {self.folder}`): "
                             "name another folder, or leave `move_to` out to flag taken mail \\Seen")
        return self

    @property
    def key(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


def _folder_name(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


class OutboundSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    verify_certificates: bool = True
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = Field(default=30, gt=0, allow_inf_nan=False)   # 0 would make the socket non-blocking
    # 30 s doubling to six hours, 28 attempts: about five days, as mail
    # servers keep retrying (Postfix's maximal_queue_lifetime); with 8 an
    # hour's smarthost outage failed every queued mail for good.
    max_attempts: int = Field(default=28, ge=1)
    retry_base_seconds: float = Field(default=30, gt=0, allow_inf_nan=False)   # 0 burns every attempt at once
    # Files sent along with one mail, in bytes before base64 (which adds a
    # third): 10 MiB stays under the 20-25 MB most providers accept.
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> OutboundSettings:
        """Both set, implicit TLS was used and starttls quietly ignored: say which one is meant."""
        if self.ssl and self.starttls:
            raise ValueError("outbound: choose `ssl: true` (implicit TLS, usually port 465) or `starttls: true` "
                             "(usually port 587 or 25), not both")
        return self


class AgentAuthSettings(_Strict):
    """Optional extra proof that agent mail is really the agent's (issue 4)."""
    require_authentication_results: bool = False
    # Our own MTA's authserv-ids (RFC 8601): customer_auth reads them too.
    trusted_authserv_ids: list[str] = Field(default_factory=list)
    # ARC sealers (RFC 8617; the d= of their ARC-Seal) whose report of the writer's DKIM or DMARC pass counts
    # when our MTA's header says the ARC chain passed: a Google Group or mailing list at the support address
    # breaks the writer's own signature on the way (ticketd.domain.own_list).
    trusted_arc_sealers: list[str] = Field(default_factory=list)


class CustomerAuthSettings(_Strict):
    """Optional proof for customer mail that reaches a ticket only by what anyone may know (ticketd.customer_auth)."""
    require_authentication_results: bool = False


class RetentionSettings(_Strict):
    """How long erasable data is kept (GDPR Art. 5(1)(e), storage limitation); null keeps it for ever."""
    closed_tickets_days: int | None = Field(default=None, gt=0, strict=True)   # tickets closed longer ago are erased
    raw_mail_days: int | None = Field(default=None, gt=0, strict=True)   # processed mail loses its original bytes

    @property
    def enabled(self) -> bool:
        return self.closed_tickets_days is not None or self.raw_mail_days is not None


class Settings(_Strict):
    support_address: str = "support@example.com"
    database_url: str = "sqlite:///var/ticketd.db"
    redis_url: str | None = None
    # The prefix of this desk's keys in Redis: desks sharing one Redis
    # database each need their own, or their workers take each other's jobs.
    # "ticketd" is the prefix every release before the setting used.
    redis_namespace: str = "ticketd"
    data_dir: Path = Path("var")
    secret_key: str = "change-me"
    # Older keys still accepted when verifying, so the key can be rotated
    # without breaking threads that are already open.
    previous_secret_keys: list[str] = Field(default_factory=list)
    rules_file: Path = Path("rules.yaml")
    templates_dir: Path | None = None   # admin overrides of templates/
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    imap: list[ImapSettings] = Field(default_factory=list)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    agent_auth: AgentAuthSettings = Field(default_factory=AgentAuthSettings)
    customer_auth: CustomerAuthSettings = Field(default_factory=CustomerAuthSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    accept_words: list[str] = Field(default_factory=lambda: list(DEFAULT_ACCEPT_WORDS))
    # 0 is allowed: no automatic mail to customers at all (outbound/outbox.py
    # suppresses it; agents' replies are not automatic and still go).
    auto_mails_per_recipient_per_hour: int = Field(default=10, ge=0)
    # Followers mail may bring a ticket (Cc, several From, someone writing in): past it, a mail
    # Cc'ing a whole company or a list's thousands makes no one else a recipient of every public
    # reply, and one event names who was left out. An agent's #follow adds past it. Zendesk stops at 48.
    max_followers: int = Field(default=50, ge=0)
    max_mime_depth: int = Field(default=20, ge=1)
    max_mime_parts: int = Field(default=500, ge=1)
    sweep_seconds: float = Field(default=5, ge=MIN_LOOP_SECONDS, allow_inf_nan=False)
    # Processes of `ticketd run` that parse incoming mail beside the one
    # that writes it (ticketd.prepare_pool); 0 parses in the processor thread.
    prepare_processes: int = Field(default=1, ge=0)
    # A mail whose preparing in such a process overruns this is tried again alone, then quarantined.
    max_prepare_seconds: float = Field(default=120, ge=1, allow_inf_nan=False)
    log_level: str = "INFO"

    @field_validator("accept_words")
    @classmethod
    def _one_word_each(cls, values: list[str]) -> list[str]:
        """`yes, ok, sure` as the one item (an environment variable, or YAML without brackets) is one phrase a
        reply says only word for word: "yes" alone would become a rejection that reopens the ticket. A list
        of several items is written as one, and may hold a phrase with a comma ("yes, please")."""
        pieces = [w.strip() for w in re.split(r"[,;，、；\n]", values[0]) if w.strip()] if len(values) == 1 else []
        if len(pieces) > 1:
            listed = ", ".join(pieces)
            raise ValueError(f"accept_words is one item, {values[0]!r}, of several words: write them as a list, "
                             f"accept_words: [{listed}] (TICKETD_ACCEPT_WORDS='[{listed}]')")
        return values

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        """One of the logging levels, upper case; cli.configure_logging would quietly take a typo as INFO."""
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}; got {value!r}")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        """A URL the Redis client opens; anything else would fail only when the first job is queued."""
        if value is not None and not value.lower().startswith(REDIS_SCHEMES):
            raise ValueError(f"redis_url must be a redis://, rediss:// or unix:// URL, or null; got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        """A SQLite file or a PostgreSQL URL ticketd's drivers open; anything else failed later with a traceback."""
        from ticketd.store.errors import database_of, shown_url

        driver, database = database_of(value) or (None, None)
        usable = driver in DATABASE_DRIVERS and (driver.startswith("postgresql") or
                                                 database not in (None, "", ":memory:"))
        if not usable:
            shown = shown_url(value)
            raise ValueError("database_url must be a sqlite:///PATH or postgresql+psycopg:// URL (a file on disk, "
                             f"or postgresql+psycopg://user@host/db); got {shown!r}")
        return value

    @field_validator("imap")
    @classmethod
    def _each_mailbox_once(cls, boxes: list[ImapSettings]) -> list[ImapSettings]:
        """A mailbox listed twice would be polled by two pollers sharing one cursor, each taking every mail."""
        seen: dict[str, int] = {}
        for index, box in enumerate(boxes):
            key = box.key.rpartition("/")[0] + "/" + _folder_name(box.folder)
            if key in seen:
                raise ValueError(f"imap[{index}] is the same mailbox as imap[{seen[key]}] ({box.key}): "
                                 "list each folder once")
            seen[key] = index
        return boxes

    @field_validator("redis_namespace")
    @classmethod
    def _redis_key_prefix(cls, value: str) -> str:
        """A prefix dramatiq can put before its keys without one desk's keys running into another's."""
        if not REDIS_NAMESPACE.fullmatch(value):
            raise ValueError("redis_namespace must be 1 to 64 letters, digits, '-', '_' or '.', starting with a "
                             f"letter or digit (it prefixes this desk's keys in Redis); got {value!r}")
        return value

    @field_validator("data_dir", "rules_file", "templates_dir", mode="before")
    @classmethod
    def _a_path(cls, value: Any) -> Any:
        """An empty path would quietly be the working directory, wherever the command is run from."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: write a path (relative paths are taken beside the settings file)")
        return value

    @field_validator("support_address")
    @classmethod
    def _lower(cls, value: str) -> str:
        if (problem := address_problem(value)) is not None:
            raise ValueError(f"support_address must be an address like support@example.com: {problem}")
        local, _, domain = value.strip().lower().rpartition("@")
        if not local.isascii():
            # Every mail ticketd sends comes from it: a UTF-8 local part would
            # need SMTPUTF8 (RFC 6531) at every customer's server.
            raise ValueError("support_address must have an ASCII local part; a UTF-8 address can take "
                             "mail too when listed under smtp.extra_addresses")
        if not domain.isascii():
            try:
                # Written in its ASCII form (IDNA, RFC 5890), as SMTP and Message-IDs carry it.
                domain = a_label_domain(domain)
            except UnicodeError:
                raise ValueError(f"support_address: {domain!r} is not a domain name") from None
        return f"{local}@{domain}"

    @model_validator(mode="after")
    def _proof_has_ids_to_trust(self) -> Settings:
        """Proof asked with no authserv-id to trust: every such mail would quietly fail it."""
        if not self.agent_auth.trusted_authserv_ids:
            for section in ("agent_auth", "customer_auth"):
                if getattr(self, section).require_authentication_results:
                    raise ValueError(NO_TRUSTED_IDS.format(key=f"{section}.require_authentication_results"))
        return self

    # The path settings the file left out, put beside it (load_settings): not a setting, how one was read.
    _defaulted_beside_file: tuple[str, ...] = PrivateAttr(default=())

    @property
    def support_domain(self) -> str:
        return self.support_address.rsplit("@", 1)[1]

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """TICKETD_SMTP__LISTEN=... -> {"smtp": {"listen": ...}}, each value read as its setting's type.

    A text setting takes the value as written: a secret such as `123456` or
    `s3cr3t #2` must not turn into a number or lose what follows `#`. Other
    settings (numbers, true/false, lists such as TICKETD_IMAP) are YAML.
    A variable naming no setting is ignored with a warning: platforms set
    variables of their own under a service's name (Kubernetes: TICKETD_PORT).
    """
    tree: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith("TICKETD_") or name == "TICKETD_CONFIG":
            continue
        path = [part.lower() for part in name[len("TICKETD_"):].split("__")]
        annotation = _annotation_at(Settings, path, name, ())
        if annotation is None:
            log.warning("%s is not a ticketd setting (%s); ignored%s", name, ".".join(path), _meant_variable(path))
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(name, value, annotation)
    return tree


def environment_sources(environ: dict[str, str]) -> dict[str, str]:
    """{"smtp.listen": "TICKETD_SMTP__LISTEN", ...}: which variable set which setting, for error messages."""
    return {".".join(part.lower() for part in name[len("TICKETD_"):].split("__")): name
            for name in environ if name.startswith("TICKETD_") and name != "TICKETD_CONFIG"}


def _annotation_at(model: type[BaseModel], path: list[str], name: str, above: tuple[str, ...]) -> Any:
    """The type of the setting at `path` (below the keys `above`), None if there is none.

    ValueError for a path that goes on below a list (set whole) or below a
    plain value, naming the variable to set instead.
    """
    field = model.model_fields.get(path[0])
    if field is None:
        return None
    if len(path) == 1:
        return field.annotation
    here = (*above, path[0])
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return _annotation_at(field.annotation, path[1:], name, here)
    whole = "TICKETD_" + "__".join(part.upper() for part in here)
    if get_origin(field.annotation) is list:
        raise ValueError(f"{name}: {'.'.join(here)} is a list; set all of it, e.g. {whole}='[...]'")
    raise ValueError(f"{name}: {'.'.join(here)} takes no nested keys; set {whole} itself")


def _kinds(annotation: Any) -> set[Any]:
    """The types a setting may hold, None's type left out: `str | None` -> {str}."""
    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    return kinds - {type(None)}


def _is_text(annotation: Any) -> bool:
    """A setting written as text: a string or a path."""
    return _kinds(annotation) <= {str, Path}


def _is_text_list(annotation: Any) -> bool:
    """A list of text, such as accept_words or smtp.extra_addresses."""
    return _kinds(annotation) == {list[str]}


def _env_value(name: str, value: str, annotation: Any) -> Any:
    """The value of variable `name` as the setting of type `annotation` takes it."""
    optional = get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation)
    if optional and value.strip().lower() in ("", "null", "~"):
        return None
    if _is_text(annotation):
        return value
    if _is_text_list(annotation):
        stripped = value.strip()
        if not stripped:
            return []
        # One plain value is a one-item list, taken as written like any text
        # (TICKETD_SMTP__EXTRA_ADDRESSES=help@example.com); only a YAML
        # list ([a, b], or lines starting "- ") is read as YAML.
        if not (stripped.startswith("[") or re.match(r"-\s", stripped)):
            return [value]
    try:
        return _load_yaml(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not a valid value ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise ValueError(f"{name}: not a valid value (nested too deep to read)") from None


def _as_typed(model: type[BaseModel], data: Any) -> Any:
    """`data` (read as YAML) with each value shaped for its setting in `model`.

    A number under a text setting becomes the text it was written as
    (`password: 123456`), a single value under a list of text a one-item
    list; every other number becomes a plain int or float. Unknown keys are
    left for pydantic to report.
    """
    if not isinstance(data, dict):
        return _plain(data)
    shaped = {}
    for key, value in data.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        shaped[key] = _plain(value) if field is None else _as_annotated(field.annotation, value)
    return shaped


def _as_annotated(annotation: Any, value: Any) -> Any:
    """`value` shaped for a setting of type `annotation` (see _as_typed)."""
    if _is_text(annotation):
        return _as_text(value)
    if _is_text_list(annotation):
        if isinstance(value, (str, _Int, _Float)):
            value = [value]
        return [_as_text(item) for item in value] if isinstance(value, list) else _plain(value)
    nested = _nested_model(annotation)
    if nested and isinstance(value, list):
        return [_as_typed(nested, item) for item in value]
    if nested:
        return _as_typed(nested, value)
    return _plain(value)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model of a section (`smtp`) or of a list's items (`imap`), None for a plain setting."""
    nested = [kind for kind in (annotation, *get_args(annotation)) if isinstance(kind, type)
              and issubclass(kind, BaseModel)]
    return nested[0] if nested else None


def _as_text(value: Any) -> Any:
    """A number as the text it was written as; anything else unchanged, for pydantic to judge."""
    return value.text if isinstance(value, (_Int, _Float)) else _plain(value)


def _plain(value: Any) -> Any:
    """`value` with _Int and _Float made plain again, so no YAML artefact reaches the Settings."""
    if isinstance(value, _Int):
        return int(value)
    if isinstance(value, _Float):
        return float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _meant_variable(path: list[str]) -> str:
    """"; did you mean TICKETD_SMTP__LISTEN?" for a variable a letter away from a setting, as the file's
    unknown keys are answered; empty when none is near."""
    model = _model_at(tuple(path[:-1]))
    close = difflib.get_close_matches(path[-1], list(model.model_fields), n=1) if model else []
    return f"; did you mean TICKETD_{'__'.join(p.upper() for p in [*path[:-1], close[0]])}?" if close else ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that holds the keys at `loc` (`("imap", 0)` -> ImapSettings), None if none."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue   # an item of a list of models: the same model
        field = model.model_fields.get(part)
        nested = _nested_model(field.annotation) if field else None
        if nested is None:
            return None
        model = nested
    return model


def _unknown_key(loc: tuple[Any, ...]) -> PydanticCustomError:
    """The error for a key written at `loc` that is no setting: a likely meant key and the valid ones."""
    key, dotted = str(loc[-1]), ".".join(str(part) for part in loc)
    model = _model_at(loc[:-1])
    valid = list(model.model_fields) if model else []
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    under = f"under {'.'.join(str(part) for part in loc[:-1])}" if len(loc) > 1 else "at the top level"
    return PydanticCustomError("unknown_key", "{message}",
                               {"message": f"unknown key `{dotted}`; {hint}valid keys {under}: {', '.join(valid)}"})


def _explained(exc: ValidationError) -> ValidationError:
    """`exc` with pydantic's "Extra inputs are not permitted" replaced by _unknown_key's message, and a
    section written as a value ("Input should be a valid dictionary or instance of SmtpSettings") said so."""
    details = []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            kind = _unknown_key(error["loc"])
        elif error["type"] in ("model_type", "dict_type") and (model := _model_at(error["loc"])) is not None:
            kind = PydanticCustomError("section", "{message}", {"message": (
                f"must be a section of settings (keys indented under it: {', '.join(model.model_fields)}), "
                f"not {error['input']!r}")})
        else:
            # Rebuilt as it was: same type and message (the message as a value, so braces in it stay).
            kind = PydanticCustomError(error["type"], "{message}", {"message": error["msg"]})
        details.append({"type": kind, "loc": error["loc"], "input": error["input"]})
    return ValidationError.from_exception_data(exc.title, details)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_PATH_KEYS = ("data_dir", "rules_file", "templates_dir")


def _resolve_relative(data: dict[str, Any], base: Path, defaulted: tuple[str, ...]) -> dict[str, Any]:
    # Paths in the file are relative to the file, so `ticketd run --config
    # /etc/ticketd/ticketd.yaml` works from any working directory. So are the
    # `defaulted` ones the file leaves out: `var/` and `rules.yaml` beside the
    # file, never a second, empty desk wherever the command was started.
    for key in defaulted:
        if (default := Settings.model_fields[key].default) is not None:
            data[key] = str(default)
    for key in _PATH_KEYS:
        if data.get(key) and isinstance(data[key], str) and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    url = data.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        if rel and rel != ":memory:":
            data["database_url"] = "sqlite:///" + str(base / rel)
    return data


# Where a database_url left out of ticketd.yaml put the database before it went beside the file.
_OLD_DEFAULT_DATABASE = Path("var") / "ticketd.db"


def moved_default_database(settings: Settings) -> Path | None:
    """The database an older ticketd made in the working directory for a database_url ticketd.yaml left
    out, when the one beside the file does not exist yet: starting there would open a second, empty desk."""
    from ticketd.store.db import sqlite_file   # the CLI reads settings before it needs SQLAlchemy

    current = sqlite_file(settings.database_url)
    old = Path.cwd() / _OLD_DEFAULT_DATABASE
    if ("database_url" not in settings._defaulted_beside_file or current is None or current.exists()
            or not old.exists() or old.resolve() == current.resolve()):
        return None
    return old


def key_lines(text: str) -> dict[tuple, int]:
    """The line (from 1) of each key and list item of a settings file, by its path as pydantic gives it
    (`("smtp", "listen")`, `("imap", 0, "host")`); empty if the text is no YAML."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines.setdefault(path + (key.value,), key.start_mark.line + 1)
                    walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault(path + (index,), item.start_mark.line + 1)
                walk(item, path + (index,))

    try:
        walk(yaml.compose(text, Loader=_SettingsLoader), ())
    except yaml.YAMLError:
        return {}
    return lines


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the YAML file (if any) with the environment on top."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("TICKETD_CONFIG")
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path:
        path = Path(path)
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(strict_yaml.not_utf8_error(exc, raw, str(path))) from None
        try:
            loaded = _load_yaml(text) or {}
        except yaml.reader.ReaderError as exc:
            raise ValueError(strict_yaml.character_error(exc, text, str(path))) from None
        except RecursionError:
            raise ValueError(strict_yaml.too_deep_error(str(path))) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ValueError(f"{where}: not valid YAML: {exc.problem or exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the top level must be a mapping of settings")
        data = loaded
        base = path.resolve().parent
    data = _as_typed(Settings, _merge(data, _env_overrides(environ)))
    defaulted = tuple(key for key in (*_PATH_KEYS, "database_url") if key not in data) if path else ()
    try:
        settings = Settings.model_validate(_resolve_relative(data, base, defaulted))
        settings._defaulted_beside_file = defaulted
        return settings
    except ValidationError as exc:
        raise _explained(exc) from None
