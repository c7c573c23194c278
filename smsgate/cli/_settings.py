"""Settings: how to reach the provider, from the environment and/or a TOML file.

No click here: ``load_settings`` is plain Python (tests and other tools call it).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

import attrs

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..backends.ippanel import IppanelGateway
    from ..backends.negin import NeginGateway

__all__ = ["CONFIG_KEYS", "ENVIRONMENT", "PROVIDERS", "Provider", "Settings", "load_settings"]

Provider = Literal["ippanel", "negin"]
PROVIDERS: tuple[Provider, ...] = ("ippanel", "negin")

#: Environment variable -> settings field. SMSGATE_LINE is Negin's word for the sender.
ENVIRONMENT: Mapping[str, str] = {
    "SMSGATE_PROVIDER": "provider",
    "SMSGATE_USERNAME": "username",
    "SMSGATE_PASSWORD": "password",
    "SMSGATE_PASSWORD_FILE": "password_file",
    "SMSGATE_SENDER": "sender",
    "SMSGATE_LINE": "sender",
    "SMSGATE_LINE2": "line2",
    "SMSGATE_OPT_OUT_FALLBACK": "opt_out_fallback",
    "SMSGATE_BASE_URL": "base_url",
    "SMSGATE_ALLOW_INSECURE_HTTP": "allow_insecure_http",
    "SMSGATE_TIMEOUT": "timeout",
}
#: Keys a config file may hold (``line`` is an alias of ``sender``).
CONFIG_KEYS = frozenset(
    {"provider", "username", "password", "password_file", "sender", "line"}
    | {"line2", "opt_out_fallback", "base_url", "allow_insecure_http", "timeout"}
)


@attrs.frozen(kw_only=True)
class Settings:
    """How to reach the provider: from the environment and/or a TOML file.

    Environment variables win over the file, so that one file can serve several
    accounts. The password is never shown in ``repr``.
    """

    provider: Provider
    username: str
    password: str = attrs.field(repr=False)
    sender: str | None = None
    line2: str | None = None
    opt_out_fallback: str | None = None
    base_url: str | None = None
    allow_insecure_http: bool = False
    timeout: float | None = None

    def gateway(self) -> IppanelGateway | NeginGateway:
        """A new gateway for these settings (``IppanelGateway`` or ``NeginGateway``)."""
        common = _Common(
            username=self.username,
            password=self.password,
            allow_insecure_http=self.allow_insecure_http,
            timeout=self.timeout,
        )
        if self.base_url:
            common["base_url"] = self.base_url
        if self.provider == "ippanel":
            from ..backends.ippanel import IppanelGateway

            return IppanelGateway(sender=self.sender, **common)
        from ..backends.negin import NeginGateway

        if self.opt_out_fallback is None:
            return NeginGateway(line=self.sender, line2=self.line2, **common)
        fallback = _OPT_OUT[self.opt_out_fallback]
        return NeginGateway(line=self.sender, line2=self.line2, opt_out_fallback=fallback, **common)


class _Common(TypedDict, total=False):
    """The constructor arguments both gateways take."""

    username: str
    password: str
    allow_insecure_http: bool
    timeout: float | None
    base_url: str


_OPT_OUT: Mapping[str, Literal["line2", "chelcheleh", "service_line"] | None] = {
    "line2": "line2",
    "chelcheleh": "chelcheleh",
    "service_line": "service_line",
    "none": None,
}


def _default_config_path() -> Path | None:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(base) / "smsgate" / "config.toml"
    return path if path.is_file() else None


def load_settings(
    config: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Read the settings: the TOML file (if any), then the environment on top.

    Args:
        config: A TOML file; ``None`` looks for ``$XDG_CONFIG_HOME/smsgate/config.toml``
            (``~/.config/smsgate/config.toml``).
        environ: The environment (default ``os.environ``).
        warn: Called with a warning, e.g. a config file that others can read.

    Returns:
        The settings.

    Raises:
        ConfigurationError: A missing or unknown key, a bad value, an unreadable file.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    path = config if config is not None else _default_config_path()
    if path is not None:
        values.update(_read_config(path, warn=warn))
    for variable, key in ENVIRONMENT.items():
        value = env.get(variable)
        if value:
            values[key] = value
    password_file = values.pop("password_file", None)
    if password_file and not values.get("password"):
        try:
            values["password"] = Path(str(password_file)).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the password file: {exc.strerror}") from None
    provider = str(values.get("provider") or "").strip().lower()
    chosen = next((known for known in PROVIDERS if known == provider), None)
    if chosen is None:
        raise ConfigurationError(
            "no provider configured: set SMSGATE_PROVIDER to 'ippanel' or 'negin' "
            "(or `provider = ...` in the config file)"
            if not provider
            else f"unknown provider {provider!r}; use 'ippanel' or 'negin'"
        )
    missing = [key for key in ("username", "password") if not values.get(key)]
    if missing:
        names = " and ".join(f"SMSGATE_{key.upper()}" for key in missing)
        raise ConfigurationError(f"missing {' and '.join(missing)}: set {names} or use --config")
    timeout = values.get("timeout")
    try:
        timeout_value = None if timeout in (None, "") else float(str(timeout))
    except ValueError:
        raise ConfigurationError("timeout must be a number of seconds") from None
    fallback = values.get("opt_out_fallback")
    if fallback is not None and fallback not in _OPT_OUT:
        raise ConfigurationError(f"opt_out_fallback must be one of {', '.join(_OPT_OUT)}")
    return Settings(
        provider=chosen,
        username=str(values["username"]),
        password=str(values["password"]),
        sender=_optional(values.get("sender")),
        line2=_optional(values.get("line2")),
        opt_out_fallback=_optional(fallback),
        base_url=_optional(values.get("base_url")),
        allow_insecure_http=_flag(values.get("allow_insecure_http")),
        timeout=timeout_value,
    )


def _read_config(path: Path, *, warn: Callable[[str], None] | None) -> dict[str, object]:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data: dict[str, object] = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # Only the position: never the decoder's text, in case a future one quotes the
        # offending line (which may hold the password).
        position = re.search(r"\(at line \d+, column \d+\)", str(exc))
        where = f" {position.group(0)}" if position else ""
        raise ConfigurationError(f"the config file {path} is not valid TOML{where}") from None
    table = data.get("smsgate")
    if isinstance(table, dict):  # a [smsgate] table is fine too
        data = table
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown key(s) in {path}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(CONFIG_KEYS))})"
        )
    if "line" in data:
        data.setdefault("sender", data.pop("line"))
    if "password" in data and mode & (stat.S_IRWXG | stat.S_IRWXO) and warn is not None:
        warn(f"{path} holds a password and other users can read it (chmod 600 {path})")
    return dict(data)


def _optional(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")
