"""Typed daemon settings from ticketd.yaml, overridable by TICKETD_* variables."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ticketd import strict_yaml

log = logging.getLogger("ticketd.settings")

DEFAULT_ACCEPT_WORDS = [
    "accept", "accepted", "yes", "ok", "okay",
    "да", "принимаю", "ок", "хорошо", "согласен",   # Russian
    "sí", "si", "acepto", "vale",                  # Spanish
    "sì", "accetto", "va bene", "certo",           # Italian
    "接受", "是", "是的", "好", "好的", "可以", "同意",   # Chinese
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpSettings(_Strict):
    listen: str = "127.0.0.1:2525"
    max_message_bytes: int = 26_214_400
    # Extra recipient addresses we accept besides support_address (and its
    # +token forms). Anything else is refused with 550 at RCPT.
    extra_addresses: list[str] = Field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


class ImapSettings(_Strict):
    host: str
    port: int = 993
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
    poll_seconds: float = 30
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

    @property
    def key(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


class OutboundSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    verify_certificates: bool = True
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 30
    # 30 s doubling to six hours, 28 attempts: about five days, as mail
    # servers keep retrying (Postfix's maximal_queue_lifetime); with 8 an
    # hour's smarthost outage failed every queued mail for good.
    max_attempts: int = 28
    retry_base_seconds: float = 30
    # Files sent along with one mail, in bytes before base64 (which adds a
    # third): 10 MiB stays under the 20-25 MB most providers accept.
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0)


class AgentAuthSettings(_Strict):
    """Optional extra proof that agent mail is really the agent's (issue 4)."""
    require_authentication_results: bool = False
    trusted_authserv_ids: list[str] = Field(default_factory=list)


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
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    accept_words: list[str] = Field(default_factory=lambda: list(DEFAULT_ACCEPT_WORDS))
    auto_mails_per_recipient_per_hour: int = 10
    max_mime_depth: int = 20
    max_mime_parts: int = 500
    sweep_seconds: float = 5
    # Processes of `ticketd run` that parse incoming mail beside the one
    # that writes it (ticketd.prepare_pool); 0 parses in the processor thread.
    prepare_processes: int = Field(default=1, ge=0)
    log_level: str = "INFO"

    @field_validator("support_address")
    @classmethod
    def _lower(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("support_address must be an address like support@example.com")
        local, _, domain = value.strip().lower().rpartition("@")
        if not local.isascii():
            # Every mail ticketd sends comes from it: a UTF-8 local part would
            # need SMTPUTF8 (RFC 6531) at every customer's server.
            raise ValueError("support_address must have an ASCII local part; a UTF-8 address can take "
                             "mail too when listed under smtp.extra_addresses")
        if not domain.isascii():
            try:
                # Written in its ASCII form (IDNA, RFC 5890), as SMTP and Message-IDs carry it.
                domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"support_address: {domain!r} is not a domain name") from None
        return f"{local}@{domain}"

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
        annotation = _annotation_at(Settings, path, name)
        if annotation is None:
            log.warning("%s is not a ticketd setting (%s); ignored", name, ".".join(path))
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


def _annotation_at(model: type[BaseModel], path: list[str], name: str) -> Any:
    """The type of the setting at `path`, None if there is none; ValueError inside a list."""
    field = model.model_fields.get(path[0])
    if field is None:
        return None
    if len(path) == 1:
        return field.annotation
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return _annotation_at(field.annotation, path[1:], name)
    raise ValueError(f"{name}: {path[0]} is a list; set all of it, e.g. TICKETD_{path[0].upper()}='[...]'")


def _env_value(name: str, value: str, annotation: Any) -> Any:
    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    optional = type(None) in kinds
    if optional and value.strip().lower() in ("", "null", "~"):
        return None
    if kinds - {type(None)} <= {str, Path}:
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not a valid value ({getattr(exc, 'problem', None) or exc})") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_relative(data: dict[str, Any], base: Path) -> dict[str, Any]:
    # Paths in the file are relative to the file, so `ticketd run --config
    # /etc/ticketd/ticketd.yaml` works from any working directory.
    for key in ("data_dir", "rules_file", "templates_dir"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    url = data.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        if rel and rel != ":memory:":
            data["database_url"] = "sqlite:///" + str(base / rel)
    return data


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the YAML file (if any) with the environment on top."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("TICKETD_CONFIG")
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path:
        path = Path(path)
        try:
            loaded = strict_yaml.load(path.read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise ValueError(f"{where}: not valid YAML: {exc.problem or exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the top level must be a mapping of settings")
        data = loaded
        base = path.resolve().parent
    data = _merge(data, _env_overrides(environ))
    return Settings.model_validate(_resolve_relative(data, base))
