"""Where ``RedisBroker`` connects: one server, a Sentinel-managed master, or Redis Cluster.

``RedisTarget`` turns the ``[scaling]`` connection settings into redis-py clients:

- ``redis``: one server from ``redis_url`` (``redis://`` or ``rediss://``).
- ``redis-sentinel``: redis-py's ``redis.asyncio.sentinel.Sentinel`` asks the
  ``sentinels`` for the master of ``sentinel_master`` on every new connection, so a
  failover is followed on the next reconnect (a connection to a demoted master fails
  with ``READONLY`` and is dropped). ``redis_url`` then only carries the data nodes'
  user, password, database and scheme (``rediss://`` = TLS); its host is ignored.
- ``redis-cluster``: ``redis.asyncio.cluster.RedisCluster`` from ``redis_url`` (any
  node; it discovers the rest). Fan-out uses sharded pub/sub, one subscriber connection
  per master (``pusherd.brokers.redis_sharded``).

TLS is on when the URL is ``rediss://``; ``RedisTls`` sets the CA, the client certificate
and whether the server certificate is verified. A ``password`` given here (from
``PUSHERD_REDIS_PASSWORD``) replaces the URL's. No secret appears in a repr or a log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from pusherd.config import ScalingConfig

__all__ = ["TOPOLOGIES", "RedisTarget", "RedisTls", "Topology"]

Topology = Literal["redis", "redis-sentinel", "redis-cluster"]
TOPOLOGIES: tuple[Topology, ...] = ("redis", "redis-sentinel", "redis-cluster")

_CONNECT_TIMEOUT = 2.0
_COMMAND_TIMEOUT = 5.0
_POOL_SIZE = 32


@dataclass(frozen=True, slots=True)
class RedisTls:
    """TLS settings for ``rediss://`` (files are PEM; empty = the system default)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    verify: bool = True

    def kwargs(self) -> dict[str, Any]:
        """redis-py's ``ssl_*`` connection options."""
        options: dict[str, Any] = {
            "ssl_cert_reqs": "required" if self.verify else "none",
            "ssl_check_hostname": self.verify,
        }
        if self.ca:
            options["ssl_ca_certs"] = self.ca
        if self.cert:
            options["ssl_certfile"] = self.cert
        if self.key:
            options["ssl_keyfile"] = self.key
        return options


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection instead of opening more."""


class _BoundedCluster(RedisCluster):
    """A cluster client with at most ``_POOL_SIZE`` commands in flight.

    redis-py's cluster nodes raise ``MaxConnectionsError`` past ``max_connections``
    instead of waiting; here a burst (hundreds of sockets subscribing at once) waits for
    a free slot, and pipelines keep ``_POOL_SIZE`` more connections per node of headroom.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_connections", 2 * _POOL_SIZE)
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(_POOL_SIZE)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """The Redis deployment one broker talks to (see the module docstring)."""

    topology: Topology = "redis"
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    password: str = field(default="", repr=False)
    tls: RedisTls = RedisTls()
    sentinels: tuple[str, ...] = ()
    sentinel_master: str = "mymaster"
    sentinel_password: str = field(default="", repr=False)

    @classmethod
    def of(cls, scaling: ScalingConfig) -> RedisTarget:
        """The deployment ``[scaling]`` names (its driver, URL, TLS, Sentinels, password)."""
        tls = scaling.tls
        return cls(
            topology=cast(Topology, scaling.driver),
            url=scaling.redis_url,
            password=scaling.password,
            tls=RedisTls(tls.ca, tls.cert, tls.key, tls.verify),
            sentinels=scaling.sentinels,
            sentinel_master=scaling.sentinel_master,
            sentinel_password=scaling.sentinel_password,
        )

    @property
    def cluster(self) -> bool:
        return self.topology == "redis-cluster"

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "rediss"

    def describe(self) -> str:
        """Where this connects, without credentials (for logs)."""
        if self.topology == "redis-sentinel":
            return f"sentinel master {self.sentinel_master!r} via {', '.join(self.sentinels)}"
        parts = urlsplit(self.url)
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"
        return f"redis cluster at {where}" if self.cluster else where

    def _auth(self) -> dict[str, Any]:
        """Database, user and password from the URL (the password overridable)."""
        parsed = parse_url(self.url)
        options: dict[str, Any] = {}
        for name in ("username", "password", "db"):
            if parsed.get(name) not in (None, ""):
                options[name] = parsed[name]
        if self.password:
            options["password"] = self.password
        return options

    def _address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 6379

    def _url_options(self) -> dict[str, Any]:
        """Connection options of the URL, with the password override and TLS settings
        (redis-py's ``from_url`` would let the URL's password win over an override)."""
        options = {**parse_url(self.url), **self._auth()}
        if self.uses_tls:
            options.update(self._tls())
        return options

    def _tls(self) -> dict[str, Any]:
        return self.tls.kwargs() if self.uses_tls else {}

    # sentinel -----------------------------------------------------------------------
    def sentinel(self) -> Sentinel | None:
        """The Sentinel client (``redis-sentinel`` only; close its ``sentinels``)."""
        if self.topology != "redis-sentinel":
            return None
        addresses = []
        for entry in self.sentinels:
            host, _, port = entry.rpartition(":")
            addresses.append((host.strip("[]"), int(port)))
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": _CONNECT_TIMEOUT,
            "socket_timeout": _COMMAND_TIMEOUT,
            # no retries with backoff on one Sentinel: the next one in the list is asked
            "retry": Retry(NoBackoff(), 0),
        }
        if self.sentinel_password:
            sentinel_kwargs["password"] = self.sentinel_password
        if self.uses_tls:
            sentinel_kwargs.update(ssl=True, **self._tls())
        return Sentinel(addresses, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]

    def _sentinel_options(self) -> dict[str, Any]:
        options = {**self._auth(), "socket_connect_timeout": _CONNECT_TIMEOUT}
        if self.uses_tls:
            options.update(ssl=True, **self._tls())
        return options

    # clients ------------------------------------------------------------------------
    def command_client(self, sentinel: Sentinel | None = None) -> Redis | RedisCluster:
        """The client for state calls and publishes (bounded pool, short timeouts).

        ``sentinel`` is the ``sentinel()`` client to ask for the master (sentinel only).
        """
        common: dict[str, Any] = {
            "socket_connect_timeout": _CONNECT_TIMEOUT,
            "socket_timeout": _COMMAND_TIMEOUT,
        }
        if sentinel is not None:
            return sentinel.master_for(  # type: ignore[no-any-return]
                self.sentinel_master,
                redis_class=Redis,
                connection_pool_class=_BlockingSentinelPool,
                max_connections=_POOL_SIZE,
                timeout=_COMMAND_TIMEOUT,
                retry=Retry(NoBackoff(), 1),
                **{**self._sentinel_options(), **common},
            )
        if self.cluster:
            options = {**self._auth(), **common}
            options.pop("db", None)  # Redis Cluster has database 0 only
            if self.uses_tls:
                options.update(ssl=True, **self._tls())
            host, port = self._address()
            return _BoundedCluster(host=host, port=port, **options)
        # bounded: a burst of subscribes waits for a connection instead of opening one
        # per in-flight command (or failing with MaxConnectionsError past 100)
        pool = BlockingConnectionPool(
            max_connections=_POOL_SIZE,
            timeout=_COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
            **{**self._url_options(), **common},
        )
        return Redis.from_pool(pool)

    def subscriber_pool(self, sentinel: Sentinel | None = None) -> ConnectionPool:
        """Connections for the pub/sub reader of ``redis`` and ``redis-sentinel``.

        RESP2 (pub/sub messages are plain replies to ``read_response()``), no socket
        timeout (the reader bounds each read itself), no retries (it reconnects itself).
        """
        options: dict[str, Any] = {
            "socket_timeout": None,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
        }
        if sentinel is not None:
            return SentinelConnectionPool(  # type: ignore[no-untyped-call]
                self.sentinel_master,
                sentinel,
                is_master=True,
                **{**self._sentinel_options(), **options},
            )
        return ConnectionPool(
            socket_connect_timeout=_CONNECT_TIMEOUT, **{**self._url_options(), **options}
        )

    def node_client(self, host: str, port: int) -> Redis:
        """A plain client for one Redis Cluster node (for single-slot transactions)."""
        options: dict[str, Any] = {**self._auth()}
        options.pop("db", None)
        if self.uses_tls:
            options.update(ssl=True, **self._tls())
        return Redis(
            host=host,
            port=port,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=_COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
            **options,
        )

    def node_pool(self, host: str, port: int) -> ConnectionPool:
        """Subscriber connections to one Redis Cluster node (as ``subscriber_pool``)."""
        options: dict[str, Any] = {**self._auth(), "protocol": 2}
        options.pop("db", None)
        if self.uses_tls:
            options.update(connection_class=SSLConnection, **self._tls())
        return ConnectionPool(
            host=host,
            port=port,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            **options,
        )
