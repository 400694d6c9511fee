"""The ``pusherd`` command: ``serve``, ``check-config`` and ``keygen``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import uvicorn

from pusherd import __version__
from pusherd.apps.base import AppRegistry
from pusherd.config import Config, generate_credentials, load_config
from pusherd.errors import ConfigError
from pusherd.logs import setup_logging

if TYPE_CHECKING:
    from pusherd.server.app import Parts

__all__ = ["main"]

logger = logging.getLogger("pusherd")

GC_GEN0_THRESHOLD = 20_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pusherd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pusherd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="TOML config file (default: $PUSHERD_CONFIG or built-in)")
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
    check.add_argument("--config", required=True)
    commands.add_parser("keygen", help="print a fresh app id, key and secret")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        app_id, key, secret = generate_credentials()
        print(f'id = "{app_id}"\nkey = "{key}"\nsecret = "{secret}"')
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"pusherd: {exc}", file=sys.stderr)
        return 1
    if args.command == "check-config":
        print(f"{args.config}: ok ({len(config.apps)} app(s), driver {config.scaling.driver})")
        return 0
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
    if config.server.workers > 1:
        if not config.scaling.driver.startswith("redis"):
            print("pusherd: --workers > 1 needs a redis [scaling] driver", file=sys.stderr)
            return 1
        return _serve_workers(config, args.config, level)
    return _serve(config, level)


def _banner(config: Config) -> None:
    server = config.server
    scheme = "https" if server.tls else "http"
    ws = "wss" if server.tls else "ws"
    base = f"{server.host}:{server.port}{server.path_prefix}"
    lines = [
        f"pusherd {__version__} listening on {scheme}://{base} "
        f"(driver {config.scaling.driver}, node {config.scaling.node_id})"
    ]
    for app in config.apps:
        # The built-in dev secret is public knowledge; any other secret stays hidden.
        secret = "app-secret (the development default)" if app.secret == "app-secret" else "***"
        lines.append(f"  app id={app.id} key={app.key} secret={secret}")
        lines.append(
            f"    websocket {ws}://{base}/app/{app.key}  rest {scheme}://{base}/apps/{app.id}"
        )
    console = config.console
    if console.enabled:
        if console.listen == "metrics":
            host = config.metrics.host or server.host
            where = f"http://{host}:{config.metrics.port}{console.path}/"
        else:
            where = f"{scheme}://{base}{console.path}/"
        lines.append(f"  debug console {where}")
    print("\n".join(lines), flush=True)


def _uvicorn_config(config: Config, level: str) -> tuple[uvicorn.Config, Parts]:
    from pusherd.server.app import build, create_app, uvicorn_protocols

    parts = build(config)
    app = create_app(config, parts)
    server = config.server
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        **uvicorn_protocols(parts),
        lifespan="on",
        log_config=None,
        log_level=level,
        access_log=level == "debug",
        timeout_graceful_shutdown=max(1, round(server.shutdown_grace)),
        ssl_certfile=server.tls.cert if server.tls else None,
        ssl_keyfile=server.tls.key if server.tls else None,
        server_header=False,
        proxy_headers=False,  # pusherd never uses the client address; saves a middleware
    ), parts


def _serve(config: Config, level: str, sock: socket.socket | None = None) -> int:
    uv_config, parts = _uvicorn_config(config, level)
    if sock is None:
        _banner(config)
    server = uvicorn.Server(uv_config)
    _install_reload(config, parts.apps)
    _exit_cleanly_after_shutdown()
    _tune_gc()
    if sock is not None:
        asyncio.run(server.serve(sockets=[sock]))
    else:
        server.run()
    return 0


def _tune_gc() -> None:
    """Keep the cyclic collector off the connection path.

    Every connection allocates a few dozen container objects, so the default gen-0
    threshold (700) runs a collection every few connections, and each full one walks
    every module and config object. Freezing what exists at startup takes those out of
    the walk; a larger gen-0 threshold makes collections rarer (same garbage, found
    later; reference cycles are rare here). Measured: 2-9% of a connect/close cycle.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _exit_cleanly_after_shutdown() -> None:
    """Exit 0 once uvicorn has shut down on SIGTERM/SIGINT.

    uvicorn re-raises the signal after its graceful shutdown, to whatever handler was
    installed before it; with this one the process exits normally (status 0, atexit
    hooks and buffered logs flushed) instead of dying by the signal.
    """

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)


def _install_reload(config: Config, apps: AppRegistry) -> None:
    """Reload apps from the config file on SIGHUP, keeping every socket."""
    if config.source is None or not hasattr(signal, "SIGHUP"):
        return

    def reload(signum: int, frame: object) -> None:
        try:
            fresh = load_config(config.source)
        except ConfigError as exc:
            logger.error("reload failed, keeping the old apps: %s", exc)
            return
        from pusherd.apps.static import StaticAppRegistry

        if isinstance(apps, StaticAppRegistry):
            apps.replace(fresh.apps)
        logger.info("reloaded %d app(s) from %s", len(fresh.apps), config.source)

    signal.signal(signal.SIGHUP, reload)


def _serve_workers(config: Config, path: str | None, level: str) -> int:
    """Fork ``workers`` processes, each with its own SO_REUSEPORT listener on the port.

    One listener per process lets the kernel spread new connections evenly (by a hash
    of the 4-tuple). A single listener shared by all of them would not: whichever
    process wakes first accepts everything pending, so under a burst one worker takes
    nearly all sockets while the others idle.
    """
    server = config.server
    # Held (bound, never listening) by the parent for its lifetime: a port already in
    # use fails here, once, before anything forks.
    probe = _reuseport_socket(server.host, server.port)
    _banner(config)
    children = []
    for index in range(server.workers):
        pid = os.fork()
        if pid == 0:
            node_id = f"{config.scaling.node_id}-{index}"
            worker = replace(config, scaling=replace(config.scaling, node_id=node_id))
            try:
                probe.close()
                sock = _reuseport_socket(server.host, server.port)
                sock.listen(2048)
                _serve(worker, level, sock)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum: int, frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    probe.close()
    return status


def _reuseport_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
