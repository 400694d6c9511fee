"""The ``pusherd`` command: argument parsing and dispatch to ``pusherd.tools``.

``serve`` runs the server; ``check-config``, ``keygen`` and ``import`` work on config
files; ``trigger``, ``tail``, ``channels``, ``members`` and ``auth-server`` talk to a
running node (or stand in for an app's auth endpoint) with the credentials from the
same config ``serve`` reads.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import orjson

from pusherd import __version__
from pusherd.config import Config, generate_credentials, load_config
from pusherd.errors import ConfigError

__all__ = ["main", "version_text"]


def version_text() -> str:
    """``pusherd X (Python Y, uvloop Z)``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        loop = f"uvloop {version('uvloop')}"
    except PackageNotFoundError:
        loop = "uvloop not installed"
    return f"pusherd {__version__} (Python {platform.python_version()}, {loop})"


def _config_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--config",
        required=required,
        help="TOML config file (default: $PUSHERD_CONFIG, else the built-in dev app)",
    )
    parser.add_argument(
        "--env-file",
        help="a Laravel .env to read first (REVERB_* or PUSHER_*; set variables win)",
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    _config_options(parser)
    parser.add_argument("--app", help="app id or key (needed when the config has several)")
    parser.add_argument(
        "--url", help="the node's base URL, e.g. http://127.0.0.1:8080 (default: from the config)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the node's TLS certificate"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pusherd", description=__doc__)
    parser.add_argument("--version", action="version", version=version_text())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server")
    _config_options(serve)
    serve.add_argument("--host", help="listen address (overrides the config)")
    serve.add_argument("--port", type=int, help="listen port (overrides the config)")
    serve.add_argument("--debug", action="store_true", help="log every frame in and out")
    serve.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", choices=["text", "json"], default=None)
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes sharing the port (needs the redis driver)",
    )
    check = commands.add_parser("check-config", help="validate a config file")
    _config_options(check, required=True)
    commands.add_parser("keygen", help="print a fresh app id, key and secret")

    trigger = commands.add_parser("trigger", help="publish an event through the REST API")
    _client_options(trigger)
    trigger.add_argument("channel", help="channel name; several: comma-separated")
    trigger.add_argument("event", help="event name")
    trigger.add_argument("data", nargs="?", default="{}", help="event data (default: {})")
    trigger.add_argument("--socket-id", help="exclude this socket from the recipients")

    tail = commands.add_parser("tail", help="subscribe like a client and print events")
    _client_options(tail)
    tail.add_argument("channels", nargs="+", metavar="CHANNEL")
    tail.add_argument("--json", action="store_true", help="one JSON object per event")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events")
    tail.add_argument("--user-id", help="presence channels: the member's user_id")
    tail.add_argument("--user-info", help="presence channels: user_info as JSON")

    channels = commands.add_parser("channels", help="list occupied channels")
    _client_options(channels)
    channels.add_argument("--prefix", default="", help="only channels starting with this")

    members = commands.add_parser("members", help="list a presence channel's members")
    _client_options(members)
    members.add_argument("channel")

    auth = commands.add_parser(
        "auth-server", help="a development auth endpoint that signs every request"
    )
    _config_options(auth)
    auth.add_argument("--app", help="app id or key (needed when the config has several)")
    auth.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    auth.add_argument("--port", type=int, required=True, help="listen port (0: any free one)")
    mode = auth.add_mutually_exclusive_group()
    mode.add_argument("--allow-all", action="store_true", help="sign every request (default)")
    mode.add_argument("--deny-all", action="store_true", help="refuse every request (403)")
    auth.add_argument("--i-know", action="store_true", help="allow a non-loopback listen address")

    imports = commands.add_parser("import", help="translate another server's config to TOML")
    imports.add_argument("kind", choices=["soketi", "env"], help="soketi config.json or a .env")
    imports.add_argument("path")
    return parser


def _environ(args: argparse.Namespace) -> Mapping[str, str]:
    if getattr(args, "env_file", None):
        from pusherd.dotenv import load_env_file

        return load_env_file(args.env_file, os.environ)
    return os.environ


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"pusherd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "keygen":
        app_id, key, secret = generate_credentials()
        print(f'id = "{app_id}"\nkey = "{key}"\nsecret = "{secret}"')
        return 0
    if command == "import":
        return _import(args.kind, args.path)
    environ = _environ(args)
    config = load_config(args.config, environ)
    if command == "check-config":
        print(f"{args.config}: ok ({len(config.apps)} app(s), driver {config.scaling.driver})")
        return 0
    if command == "serve":
        return _serve(args, config, environ)
    if command == "auth-server":
        from pusherd.tools.auth_server import serve as serve_auth
        from pusherd.tools.target import pick_app

        app = pick_app(config, args.app)
        return serve_auth(app, args.host, args.port, allow=not args.deny_all, i_know=args.i_know)
    return _client_verb(args, config)


def _client_verb(args: argparse.Namespace, config: Config) -> int:
    import httpx

    from pusherd.tools.target import resolve_target

    target = resolve_target(config, args.app, args.url, args.insecure)
    try:
        if args.command == "trigger":
            from pusherd.tools.trigger import trigger

            channels = [c for c in args.channel.split(",") if c]
            return trigger(target, channels, args.event, args.data, args.socket_id)
        if args.command == "channels":
            from pusherd.tools.listing import channels as list_channels

            return list_channels(target, args.prefix)
        if args.command == "members":
            from pusherd.tools.listing import members

            return members(target, args.channel)
    except httpx.HTTPError as exc:
        print(f"pusherd: cannot reach {target.http_url}: {exc}", file=sys.stderr)
        return 1
    from pusherd.tools.tail import TailOptions, tail

    opts = TailOptions(args.channels, as_json=args.json, count=args.count)
    if args.user_id:
        opts.user_id = args.user_id
    if args.user_info:
        try:
            opts.user_info = orjson.loads(args.user_info)
        except orjson.JSONDecodeError:
            raise ConfigError("--user-info must be JSON") from None
    return tail(target, opts)


def _import(kind: str, path: str) -> int:
    from pusherd.tools.importer import import_env, import_soketi

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    convert = import_soketi if kind == "soketi" else import_env
    sys.stdout.write(convert(text, Path(path).name))
    return 0


def _serve(args: argparse.Namespace, config: Config, environ: Mapping[str, str]) -> int:
    from pusherd.logs import setup_logging
    from pusherd.tools.serve import serve

    server = config.server
    if args.host:
        server = replace(server, host=args.host)
    if args.port is not None:
        server = replace(server, port=args.port)
    if args.workers is not None:
        server = replace(server, workers=args.workers)
    config = replace(
        config,
        server=server,
        debug=config.debug or args.debug,
        log_format=args.log_format or config.log_format,
    )
    level = args.log_level or ("debug" if config.debug else "info")
    setup_logging(level, config.log_format)
    if config.server.workers > 1 and not config.scaling.driver.startswith("redis"):
        print("pusherd: --workers > 1 needs a redis [scaling] driver", file=sys.stderr)
        return 1
    return serve(config, level, environ)
