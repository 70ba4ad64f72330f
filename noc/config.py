"""Configuration: a TOML file plus NOC_* environment overrides, validated once.

Precedence, highest first: environment (`NOC_HEALTH__INTERVAL_SECONDS=10`,
nested keys joined by `__`), the TOML file, built-in defaults. The file is the
first of: `--config`, `$NOC_CONFIG`, `./noc.toml`, `<user config dir>/noc.toml`.

Every problem is reported as one line naming the file, the key path
(`regions[1].checks[0].url`) and what to do about it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from noc.model import CheckTarget, Role, Topology, mask_url
from noc.ui_settings import KeyMap, UIConfig

APP_NAME = "noc"
ENV_PREFIX = "NOC_"
CONFIG_ENV = "NOC_CONFIG"

# The "tightened" preset of domain.md: 3 checks at 10 s, 30 s detection.
PRESETS: dict[str, dict[str, float | int]] = {
    "standard": {"interval_seconds": 30, "failure_threshold": 3},
    "tightened": {"interval_seconds": 10, "failure_threshold": 3},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EstateConfig(_Strict):
    name: str = "estate"
    topology: Topology = Topology.ACTIVE_PASSIVE
    rpo_seconds: float = Field(default=60, ge=0)
    rto_seconds: float = Field(default=300, ge=0)


class CheckTuning(_Strict):
    """Settings a check inherits from [health] and may override one by one."""

    preset: Literal["standard", "tightened"] | None = None
    interval_seconds: float | None = Field(default=None, gt=0)
    failure_threshold: int | None = Field(default=None, ge=1)
    recovery_threshold: int | None = Field(default=None, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    verify_tls: bool | None = None


class HealthConfig(_Strict):
    preset: Literal["standard", "tightened"] = "standard"
    interval_seconds: float | None = Field(default=None, gt=0)
    failure_threshold: int | None = Field(default=None, ge=1)
    # Successes needed to recover; defaults to failure_threshold.
    recovery_threshold: int | None = Field(default=None, ge=1)
    timeout_seconds: float = Field(default=2, gt=0)
    verify_tls: bool = True
    # Bound on probes in flight at once across the whole estate.
    max_in_flight: int = Field(default=16, ge=1, le=256)


class CheckConfig(CheckTuning):
    url: str
    name: str | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    body_contains: str | None = None
    # Optional JSON condition: the dotted field must equal json_equals
    # (compared as text), e.g. json_field = "status", json_equals = "healthy".
    json_field: str | None = None
    json_equals: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        return value

    @model_validator(mode="after")
    def _json_pair(self) -> Self:
        if (self.json_field is None) != (self.json_equals is None):
            raise ValueError("json_field and json_equals go together: set both or neither")
        return self


class RegionConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    name: str = ""
    role: Role = Role.SECONDARY
    location: tuple[float, float] = (0.0, 0.0)
    redis_url: str | None = None
    checks: list[CheckConfig] = Field(default_factory=list)

    @field_validator("location")
    @classmethod
    def _lat_lon(cls, value: tuple[float, float]) -> tuple[float, float]:
        lat, lon = value
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise ValueError("must be [latitude, longitude] with -90..90 and -180..180")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class FailoverConfig(_Strict):
    # The Redis hash holding the STOP flag, in every region's store.
    flag_key: str = "noc:failover"
    store_timeout_seconds: float = Field(default=2, gt=0)
    # How often the flag is read from every store.
    flag_interval_seconds: float = Field(default=10, gt=0)


class NocConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    estate: EstateConfig = Field(default_factory=EstateConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    regions: list[RegionConfig] = Field(min_length=1)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    keys: KeyMap = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment wins over them.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _estate_rules(self) -> Self:
        ids = [r.id for r in self.regions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"region ids must be unique; repeated: {', '.join(duplicates)}")
        primaries = [r.id for r in self.regions if r.role is Role.PRIMARY]
        if self.estate.topology is Topology.ACTIVE_PASSIVE and len(primaries) != 1:
            raise ValueError(
                'active-passive needs exactly one region with role = "primary"; '
                f"found {len(primaries)}"
            )
        return self

    @property
    def primary(self) -> RegionConfig:
        return next((r for r in self.regions if r.role is Role.PRIMARY), self.regions[0])

    def region(self, region_id: str) -> RegionConfig | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def check_targets(self) -> list[CheckTarget]:
        return [
            self._target(region, index, check)
            for region in self.regions
            for index, check in enumerate(region.checks)
        ]

    def _target(self, region: RegionConfig, index: int, check: CheckConfig) -> CheckTarget:
        health = self.health
        preset = PRESETS[check.preset or health.preset]
        interval = check.interval_seconds or (
            health.interval_seconds if check.preset is None else None
        )
        threshold = check.failure_threshold or (
            health.failure_threshold if check.preset is None else None
        )
        failure_threshold = int(threshold or preset["failure_threshold"])
        return CheckTarget(
            check_id=f"{region.id}/{index}",
            region_id=region.id,
            name=check.name or _short_name(check.url),
            url=check.url,
            expect_status=check.expect_status,
            body_contains=check.body_contains,
            json_field=check.json_field,
            json_equals=check.json_equals,
            timeout_seconds=check.timeout_seconds or health.timeout_seconds,
            interval_seconds=float(interval or preset["interval_seconds"]),
            failure_threshold=failure_threshold,
            recovery_threshold=(
                check.recovery_threshold or health.recovery_threshold or failure_threshold
            ),
            verify_tls=health.verify_tls if check.verify_tls is None else check.verify_tls,
        )


def _short_name(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}{parts.path}" if parts.path not in ("", "/") else host


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per issue."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    config: NocConfig
    path: Path
    file_data: Mapping[str, Any]
    env: Mapping[str, str]


def candidate_paths(explicit: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """Where noc looks for its file, in order, with why each place is looked at."""
    found: list[tuple[Path, str]] = []
    if explicit:
        found.append((Path(explicit), "--config"))
    if os.environ.get(CONFIG_ENV):
        found.append((Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"))
    found.append((Path.cwd() / "noc.toml", "current directory"))
    found.append((Path(platformdirs.user_config_dir(APP_NAME)) / "noc.toml", "user config dir"))
    return found


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    candidates = candidate_paths(explicit)
    # An explicitly named file must exist; the fallbacks are tried in turn.
    if explicit or os.environ.get(CONFIG_ENV):
        path, why = candidates[0]
        if not path.is_file():
            raise ConfigError([f"{path}: no such file (named by {why})"])
        return path
    for path, _ in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p, _ in candidates)
    raise ConfigError(
        [
            f"no configuration found (looked at {looked}); "
            "create one with `noc config example > noc.toml`, or try `noc demo`"
        ]
    )


def load_config(explicit: str | os.PathLike[str] | None = None) -> LoadedConfig:
    path = find_config(explicit)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from exc
    return LoadedConfig(config=parse_config(data, path), path=path, file_data=data, env=_noc_env())


def parse_config(data: Mapping[str, Any], path: Path | str = "<config>") -> NocConfig:
    try:
        return NocConfig(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(path, error) for error in exc.errors()]) from exc


def _describe(path: Path | str, error: Any) -> str:
    key = key_path(error["loc"]) or "(top level)"
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        fix = "add this key"
    elif kind == "extra_forbidden":
        fix = "remove it or check its spelling (`noc config example` lists every key)"
        message = "unknown key"
    else:
        received = error.get("input")
        shown = received if not isinstance(received, dict | list) else None
        fix = f"got {_safe_repr(key, shown)}" if shown is not None else ""
    return f"{path}: {key}: {message}" + (f" ({fix})" if fix else "")


def _safe_repr(key: str, value: Any) -> str:
    text = repr(value)
    return mask_url(text) if "url" in key else text


def key_path(loc: tuple[str | int, ...]) -> str:
    """('regions', 1, 'checks', 0, 'url') -> 'regions[1].checks[0].url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _noc_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) and k != CONFIG_ENV}


def effective_values(loaded: LoadedConfig) -> Iterator[tuple[str, Any, str]]:
    """(key path, value, where it came from) for every setting, secrets masked."""
    env_keys = {k.removeprefix(ENV_PREFIX).lower().replace("__", "."): k for k in loaded.env}
    dumped = loaded.config.model_dump(mode="json")
    for path, value in _flatten(dumped, ()):
        dotted = key_path(path)
        plain = ".".join(str(p) for p in path if not isinstance(p, int))
        if plain in env_keys or dotted in env_keys:
            source = f"env {env_keys.get(dotted) or env_keys[plain]}"
        elif _present(loaded.file_data, path):
            source = str(loaded.path)
        else:
            source = "default"
        if isinstance(value, str) and ("url" in dotted or "secret" in dotted):
            value = mask_url(value)
        yield dotted, value, source


def _flatten(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, (*path, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, (*path, index))
    else:
        yield path, value


def _present(data: Any, path: tuple[str | int, ...]) -> bool:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return False
        elif not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


EXAMPLE = """\
# noc configuration. Every key below shows its default or an example value.
# Environment variables override this file: NOC_<SECTION>__<KEY>, for example
#   NOC_HEALTH__INTERVAL_SECONDS=10 noc
# Lookup order: --config, $NOC_CONFIG, ./noc.toml, the user config dir.

[estate]
name = "mail-prod"
topology = "active-passive"          # or "active-active"
rpo_seconds = 60                     # data loss you accept on failover
rto_seconds = 300                    # time to recover you promise

[health]                              # defaults for every check
preset = "standard"                  # "standard" (30 s x 3 = 90 s) or "tightened" (10 s x 3 = 30 s)
interval_seconds = 30                # overrides the preset
failure_threshold = 3                # consecutive failures before a check is down
# recovery_threshold = 3             # consecutive successes to recover (default: failure_threshold)
timeout_seconds = 2                  # a slower answer is a failed check
verify_tls = true
max_in_flight = 16                   # probes running at once, across the estate

[failover]
flag_key = "noc:failover"            # the Redis hash holding the STOP flag in every region
store_timeout_seconds = 2
flag_interval_seconds = 10

[ui]
theme = "dark"                       # dark, light, wall, ansi, colorblind, or your theme's name
mode = "normal"                      # "wall": read-only, no footer, views rotate (or `noc --wall`)
refresh_hz = 4                       # at most this many repaints a second
rotate_seconds = 20                  # wall mode: how long each view stays up
low_bandwidth = false                # no animation, 1 repaint a second, no seconds on clocks
# theme_file = "~/.config/noc/theme.toml"   # your own theme (this is the default place)

[keys]                                # binding id = key(s); `?` in noc lists every id
# refresh = "ctrl+r"
# failover = "F,f9"

[[regions]]
id = "ro"
name = "Bucharest"
role = "primary"                      # "primary" or "secondary"
location = [44.43, 26.10]             # latitude, longitude
redis_url = "redis://127.0.0.1:6379/0"   # a password here is masked everywhere

  [[regions.checks]]
  url = "https://ro.mail.example.com/health"
  expect_status = 200
  body_contains = "ok"                # optional
  # json_field = "status"             # optional JSON condition on a dotted field
  # json_equals = "healthy"
  # interval_seconds, failure_threshold, recovery_threshold, timeout_seconds,
  # verify_tls and preset may be set per check too.

[[regions]]
id = "bg"
name = "Sofia"
role = "secondary"
location = [42.70, 23.32]
redis_url = "redis://127.0.0.1:6380/0"

  [[regions.checks]]
  url = "https://bg.mail.example.com/health"
"""
