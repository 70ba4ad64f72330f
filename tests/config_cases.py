"""Generated configurations and NOC_* environments, and one in-process run of each
through `noc check`, `noc config show` and the dashboard's start path.

Shared by tests/unit/test_config_fuzz.py (a bounded Hypothesis profile) and
bench/config_fuzz.py (10,000 cases). Every URL points at a closed loopback port,
so an accepted configuration's `noc check` fails fast and touches no network.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hypothesis import strategies as st


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


CLOSED = _closed_port()

# --- TOML out of Python values (no writer in the standard library) ---


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: Mapping[str, Any]) -> str:
    """Top-level tables as [section] / [[array]], everything else inline."""
    lines: list[str] = []
    plain = {k: v for k, v in data.items() if not isinstance(v, dict) and _scalar_list(v)}
    for key, value in plain.items():
        lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    for key, value in data.items():
        if key in plain:
            continue
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        else:
            for item in value:
                lines.append(f"[[{json.dumps(key)}]]")
                lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def _scalar_list(value: Any) -> bool:
    return not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value))


# --- strategies ---


def base_config() -> dict[str, Any]:
    """A valid two-region estate whose every endpoint refuses at once."""
    return {
        "estate": {"name": "fuzz"},
        "health": {"timeout_seconds": 0.5},
        "failover": {"store_timeout_seconds": 0.5},
        "regions": [
            {
                "id": "ro",
                "role": "primary",
                "redis_url": f"redis://127.0.0.1:{CLOSED}/0",
                "checks": [{"url": f"http://127.0.0.1:{CLOSED}/health"}],
            },
            {
                "id": "bg",
                "redis_url": f"redis://127.0.0.1:{CLOSED}/1",
                "checks": [{"url": f"http://127.0.0.1:{CLOSED}/health"}],
            },
        ],
    }


# Where a generated value lands: real keys of every section, and some that are not.
KEY_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("estate", "name"),
    ("estate", "topology"),
    ("estate", "rpo_seconds"),
    ("estate", "state_dir"),
    ("health", "preset"),
    ("health", "interval_seconds"),
    ("health", "failure_threshold"),
    ("health", "timeout_seconds"),
    ("health", "max_in_flight"),
    ("health", "verify_tls"),
    ("regions", 0, "id"),
    ("regions", 1, "id"),
    ("regions", 0, "role"),
    ("regions", 0, "location"),
    ("regions", 0, "redis_url"),
    ("regions", 0, "service_ips"),
    ("regions", 0, "checks", 0, "url"),
    ("regions", 0, "checks", 0, "expect_status"),
    ("regions", 0, "checks", 0, "interval_seconds"),
    ("regions", 1, "checks", 0, "json_field"),
    ("failover", "actuators"),
    ("failover", "cooldown_seconds"),
    ("failover", "lock_ttl_seconds"),
    ("failover", "dns"),
    ("failover", "hooks"),
    ("dns", "resolvers"),
    ("dns", "records"),
    ("email", "resolver"),
    ("suppression", "key_pattern"),
    ("deliverability", "complaint_warn_rate"),
    ("alerts", "rules"),
    ("notify",),
    ("replication",),
    ("ui", "theme"),
    ("ui", "refresh_hz"),
    ("ui", "mode"),
    ("keys", "refresh"),
    ("keys", "no_such_binding"),
    ("no_such_section",),
    ("health", "no_such_key"),
)

_URLS = st.sampled_from(
    [
        f"http://127.0.0.1:{CLOSED}/h?token=s3cret",
        "ftp://127.0.0.1/health",
        "http://",
        "http://[::1/health",
        "http://127.0.0.1:99999/health",
        "redis://:pw@127.0.0.1:0/0",
        "not a url",
        "unix:///nonexistent.sock",
        "",
        "http://user:pw@bad host/health",
    ]
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**62, -(2**62), 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_TEXT = st.text(max_size=40)
_SCALARS = st.one_of(_NUMBERS, _TEXT, st.booleans(), _URLS)
VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "url", "name", "x", "rule"]), inner, max_size=3),
    ),
    max_leaves=6,
)


# Values a key may well accept: the fuzz must reach the accepted paths as well.
PLAUSIBLE: st.SearchStrategy[Any] = st.one_of(
    st.integers(1, 600),
    st.floats(0.01, 3600),
    st.sampled_from(["standard", "tightened", "primary", "secondary", "active-active", "dark"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    st.just(f"http://127.0.0.1:{CLOSED}/h?token=s3cret"),
)


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return
            node = node[part]
        else:
            if not isinstance(node, dict):
                return
            node = node.setdefault(part, {})
    last = path[-1]
    into_table = isinstance(node, dict) and isinstance(last, str)
    into_list = isinstance(node, list) and isinstance(last, int) and last < len(node)
    if into_table or into_list:
        node[last] = value


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """TOML bytes: a valid estate with some keys replaced by junk, sometimes a
    duplicate region id, sometimes bytes that are not UTF-8 or not TOML."""
    data = base_config()
    # Often none or one change, so that accepted configurations get exercised too.
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):
        _set(data, draw(st.sampled_from(KEY_PATHS)), draw(st.one_of(PLAUSIBLE, VALUES)))
    duplicate = draw(st.integers(0, 3)) == 0
    if duplicate and isinstance(data.get("regions"), list) and data["regions"]:
        data["regions"].append(dict(data["regions"][0]))  # a duplicate id
    text = toml_document(data)
    damage = draw(
        st.sampled_from(["none", "none", "none", "none", "latin1", "bytes", "truncate", "garbage"])
    )
    if damage == "latin1":
        return text.encode("utf-8") + "\n# café\n".encode("latin-1")
    if damage == "bytes":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.binary(min_size=1, max_size=4).filter(_not_utf8))
        raw = text.encode("utf-8")
        return raw[:at] + junk + raw[at:]
    if damage == "truncate":
        return text.encode("utf-8")[: draw(st.integers(0, len(text)))]
    if damage == "garbage":
        return draw(st.binary(max_size=64))
    return text.encode("utf-8")


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


ENV_NAMES = st.sampled_from(
    [
        "NOC_HEALTH",
        "NOC_HEALTH__INTERVAL_SECONDS",
        "NOC_HEALTH__PRESET",
        "NOC_HEALTH__NO_SUCH_KEY",
        "NOC_ESTATE",
        "NOC_ESTATE__NAME",
        "NOC_ESTATE__STATE_DIR",
        "NOC_REGIONS",
        "NOC_REGIONS__0__ID",
        "NOC_FAILOVER",
        "NOC_FAILOVER__DNS",
        "NOC_FAILOVER__DNS__KEY_SECRET",
        "NOC_FAILOVER__ACTUATORS",
        "NOC_FAILOVER__HOOKS__TIMEOUT_SECONDS",
        "NOC_UI",
        "NOC_UI__THEME",
        "NOC_KEYS",
        "NOC_NOTIFY",
        "NOC_ALERTS__RULES",
        "NOC_DNS__RESOLVERS",
        "NOC_NO_SUCH_SECTION",
    ]
)
ENV_VALUES = st.one_of(
    st.sampled_from(
        [
            "{",
            "[",
            "[1,",
            '{"x": 1}',
            "[]",
            "{}",
            "null",
            "1e999",
            "-1",
            "true",
            "",
            " ",
            '{"interval_seconds": "x"}',
            '[{"id": "ro"}]',
            '["flag", "flag"]',
            "\u00e9\u20ac",
        ]
    ),
    st.text(max_size=20).filter(lambda v: "\x00" not in v),
    st.binary(min_size=1, max_size=6)
    .filter(lambda b: b"\x00" not in b)
    .map(lambda b: b.decode("utf-8", "surrogateescape")),
)


def environments() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(st.just({}), st.dictionaries(ENV_NAMES, ENV_VALUES, max_size=3))


# --- one run ---


class Outcome(StrEnum):
    CLEAN_ERROR = "clean error"
    ACCEPTED = "accepted"
    UNCLEAR = "unclear error"  # no traceback, but the message breaks the contract
    TRACEBACK = "traceback"


@dataclass
class CaseResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    @property
    def worst(self) -> Outcome:
        order = list(Outcome)
        return max(self.outcomes.values(), key=order.index)


@contextlib.contextmanager
def noc_environment(env: Mapping[str, str], state: Path) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("NOC_")]:
            del os.environ[key]
        os.environ["XDG_STATE_HOME"] = str(state)
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _problems_named(lines: list[str], path: Path) -> bool:
    """Every problem names its file or its variable, then a key or a place."""
    for line in lines:
        text = line.removeprefix("noc: config error: ")
        named = text.startswith(str(path)) or text.startswith("$NOC_")
        if not named or ": " not in text:
            return False
    return bool(lines)


def _run_main(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    from noc.cli import main

    out, err = io.StringIO(), io.StringIO()
    crash = None
    code: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the thing under test: any escape is a traceback
            crash = traceback.format_exc()
    return code, out.getvalue(), err.getvalue(), crash


def run_case(raw: bytes, env: Mapping[str, str], directory: Path) -> CaseResult:
    path = directory / "noc.toml"
    path.write_bytes(raw)
    result = CaseResult()
    with noc_environment(env, directory / "state"):
        code, out, err, crash = _run_main(["check", "--config", str(path)])
        problems = [line for line in err.splitlines() if line.startswith("noc: config error:")]
        if crash is not None:
            result.outcomes["check"], result.details["check"] = Outcome.TRACEBACK, crash
        elif code == 3 and out.startswith("NOC UNKNOWN - config error: "):
            clean = _problems_named(problems, path)
            result.outcomes["check"] = Outcome.CLEAN_ERROR if clean else Outcome.UNCLEAR
            result.details["check"] = err
        elif code in (0, 1, 2, 3) and out.startswith("NOC ") and not problems:
            result.outcomes["check"] = Outcome.ACCEPTED
        else:
            result.outcomes["check"] = Outcome.UNCLEAR
            result.details["check"] = f"exit {code}\n{out}\n{err}"

        code, out, err, crash = _run_main(["config", "show", "--config", str(path)])
        problems = [line for line in err.splitlines() if line.startswith("noc: config error:")]
        if crash is not None:
            result.outcomes["show"], result.details["show"] = Outcome.TRACEBACK, crash
        elif code == 3 and _problems_named(problems, path):
            result.outcomes["show"] = Outcome.CLEAN_ERROR
        elif code == 0 and out.startswith("# effective configuration"):
            result.outcomes["show"] = Outcome.ACCEPTED
        else:
            result.outcomes["show"] = Outcome.UNCLEAR
            result.details["show"] = f"exit {code}\n{out}\n{err}"

        result.outcomes["dashboard"], detail = _dashboard_start(path)
        if detail:
            result.details["dashboard"] = detail
    return result


def _dashboard_start(path: Path) -> tuple[Outcome, str]:
    """What `noc --config FILE` does before the first frame: load, resolve the
    estate's state dir, build the app (keymap, themes, scheduler, journal)."""
    from noc.app import NocApp
    from noc.audit import estate_paths
    from noc.config import ConfigError, load_config

    try:
        loaded = load_config(path)
        directory = estate_paths(loaded.config).directory
        NocApp(loaded.config, config_path=str(loaded.path), state_path=path.parent / "app")
    except ConfigError as exc:
        named = _problems_named(exc.problems, path)
        return (Outcome.CLEAN_ERROR if named else Outcome.UNCLEAR), "\n".join(exc.problems)
    except Exception:
        return Outcome.TRACEBACK, traceback.format_exc()
    assert directory.name
    return Outcome.ACCEPTED, ""
