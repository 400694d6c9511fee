"""Real Redis deployments for tests, on loopback: one server, TLS, Sentinel, Cluster.

Each ``Topology`` starts its ``redis-server`` processes (``tests/redis_server.py``) and says
how pusherd reaches it: ``scaling()`` are the ``[scaling]`` keys for ``pusherd serve``,
``target()`` the ``RedisTarget`` for a ``RedisBroker``. ``Topologies`` starts each kind once
per session, on first use, and stops them all at the end.

* ``single``: one server (``redis://``).
* ``tls``: one server with a TLS port only clients with a certificate may use, and a
  password; the certificates are made by the ``openssl`` CLI (``TlsFiles``).
* ``sentinel``: a master, a replica and one Sentinel (quorum 1, down after 1 s). The
  ``sentinels`` list starts with an address where nothing listens, which pusherd must skip.
* ``cluster``: three masters with a replica each, made by ``redis-cli --cluster create``
  (node timeout 1 s).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster as SyncRedisCluster

from pusherd.brokers.redis_connect import RedisTarget, RedisTls
from tests.redis_server import RedisServer, free_port

__all__ = [
    "KINDS",
    "ClusterTopology",
    "SentinelTopology",
    "SingleTopology",
    "TlsFiles",
    "TlsTopology",
    "Topologies",
    "Topology",
    "wait_for",
]

KINDS = ("single", "tls", "sentinel", "cluster")
MASTER = "pusherd-master"
_WAIT = 20.0


def wait_for(condition: Callable[[], bool], timeout: float = _WAIT, what: str = "") -> None:
    """Poll ``condition`` (every 50 ms) until true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.pem"
        self.server_cert, self.server_key = directory / "server.pem", directory / "server.key"
        self.client_cert, self.client_key = directory / "client.pem", directory / "client.key"
        ca_key = directory / "ca.key"
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=pusherd test CA", "-keyout", ca_key, "-out", self.ca,
        )  # fmt: skip
        for cert, key, name, san in (
            (self.server_cert, self.server_key, "server", "subjectAltName=IP:127.0.0.1"),
            (self.client_cert, self.client_key, "client", "extendedKeyUsage=clientAuth"),
        ):
            request = directory / f"{name}.csr"
            extensions = directory / f"{name}.ext"
            extensions.write_text(san + "\n", encoding="utf-8")
            self._openssl(
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=pusherd test {name}",
                "-keyout", key, "-out", request,
            )  # fmt: skip
            self._openssl(
                "x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", ca_key,
                "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", cert,
            )  # fmt: skip

    @staticmethod
    def _openssl(*args: object) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


class Topology:
    """A running Redis deployment (see the module docstring)."""

    kind = ""
    driver = "redis"

    def __init__(self) -> None:
        self.servers: list[RedisServer] = []

    def scaling(self) -> dict[str, Any]:
        """``[scaling]`` keys (driver, URL, TLS, sentinels) for ``pusherd serve``."""
        raise NotImplementedError

    def target(self) -> RedisTarget:
        raise NotImplementedError

    def client(self) -> Any:
        """A synchronous redis-py client for checks (``redis.Redis`` or ``RedisCluster``)."""
        raise NotImplementedError

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()
            client.script_flush()

    def listeners(self, name: str) -> int:
        """How many connections are subscribed to the pub/sub channel ``name``."""
        with self.client() as client:
            [(_, count)] = client.pubsub_numsub(name)
            return int(count)

    def close(self) -> None:
        for server in self.servers:
            server.close()


class SingleTopology(Topology):
    kind = "single"

    def __init__(self, server: RedisServer | None = None) -> None:
        """Start a server, or describe ``server`` (started and closed by its owner)."""
        super().__init__()
        self.server = server if server is not None else RedisServer()
        if server is None:
            self.servers.append(self.server)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def scaling(self) -> dict[str, Any]:
        return {"driver": "redis", "redis_url": self.url}

    def target(self) -> RedisTarget:
        return RedisTarget(url=self.url)

    def client(self) -> Any:
        return redis.Redis(port=self.server.port)


class TlsTopology(Topology):
    kind = "tls"
    PASSWORD = "tls-topology-pw"

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="pusherd-tls-")
        self.files = TlsFiles(Path(self._dir.name))
        self.tls_port = free_port()
        files = self.files
        # fmt: off
        self.server = RedisServer(
            extra_args=[
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(files.server_cert),
                "--tls-key-file", str(files.server_key),
                "--tls-ca-cert-file", str(files.ca),
                "--tls-auth-clients", "yes",
                "--requirepass", self.PASSWORD,
            ],
            password=self.PASSWORD,
        )
        # fmt: on
        self.servers.append(self.server)
        self.server.start()

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"

    def tls(self) -> dict[str, Any]:
        files = self.files
        return {"ca": str(files.ca), "cert": str(files.client_cert), "key": str(files.client_key)}

    def scaling(self) -> dict[str, Any]:
        return {
            "driver": "redis",
            "redis_url": self.url,
            "password": self.PASSWORD,
            "tls": self.tls(),
        }

    def target(self) -> RedisTarget:
        return RedisTarget(url=self.url, password=self.PASSWORD, tls=RedisTls(**self.tls()))

    def client(self) -> Any:
        return redis.Redis(port=self.server.port, password=self.PASSWORD)

    def close(self) -> None:
        super().close()
        self._dir.cleanup()


class SentinelTopology(Topology):
    kind = "sentinel"
    driver = "redis-sentinel"

    def __init__(self) -> None:
        super().__init__()
        first = RedisServer()
        first.start()
        second = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(first.port)])
        second.start()
        self.data = [first, second]
        self.sentinel = RedisServer(
            sentinel=(
                f"sentinel monitor {MASTER} 127.0.0.1 {first.port} 1\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
        )
        self.servers += [first, second, self.sentinel]
        self.sentinel.start()
        self.nowhere = free_port()  # the first sentinel listed: nobody listens there
        wait_for(lambda: self._replicas_known() >= 1, what="sentinel to see the replica")

    def _sentinel_client(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel.port, socket_timeout=2)

    def _replicas_known(self) -> int:
        with self._sentinel_client() as client:
            return len(client.sentinel_slaves(MASTER))

    def master(self) -> RedisServer:
        """The data server Sentinel names as master now."""
        with self._sentinel_client() as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER)
        return next(server for server in self.data if server.port == int(port))

    def replica_synced(self) -> bool:
        """Every running data server but the master is a connected, synced replica."""
        master = self.master()
        for server in self.data:
            if server is master or not server.running:
                continue
            with redis.Redis(port=server.port, socket_timeout=2) as client:
                info = client.info("replication")
            if info.get("master_link_status") != "up" or info.get("master_port") != master.port:
                return False
        return True

    def heal(self) -> None:
        """Start every stopped data server (Sentinel makes it a replica) and wait until
        Sentinel knows them all and each replica has synced."""
        for server in self.data:
            server.start()
        wait_for(self.replica_synced, what="replicas to sync after a failover")

    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{self.nowhere}", f"127.0.0.1:{self.sentinel.port}"]

    def scaling(self) -> dict[str, Any]:
        return {
            "driver": "redis-sentinel",
            "redis_url": "redis://unused-host/0",
            "sentinels": self.sentinels(),
            "sentinel_master": MASTER,
        }

    def target(self) -> RedisTarget:
        return RedisTarget(
            topology="redis-sentinel",
            url="redis://unused-host/0",
            sentinels=tuple(self.sentinels()),
            sentinel_master=MASTER,
        )

    def client(self) -> Any:
        return redis.Redis(port=self.master().port)


class ClusterTopology(Topology):
    kind = "cluster"
    driver = "redis-cluster"
    MASTERS = 3

    def __init__(self, replicas: int = 1) -> None:
        super().__init__()
        size = self.MASTERS * (1 + replicas)
        for _ in range(size):
            server = RedisServer(
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "1000",
                    "--cluster-port", str(free_port()),
                ]
            )  # fmt: skip
            self.servers.append(server)
            server.start()
        addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses,
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(self.healthy, what="the redis cluster to be ready")

    def healthy(self) -> bool:
        """Every running node says the cluster is ok and sees 3 masters with slots, and
        every replica has synced with its master (only a synced one can take over)."""
        for server in self.servers:
            if not server.running:
                continue
            with redis.Redis(port=server.port, socket_timeout=2) as client:
                info = client.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info["cluster_size"]) < 3:
                    return False
                replication = client.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
        return True

    def masters(self) -> list[RedisServer]:
        with self.client() as client:
            ports = {int(node.port) for node in client.get_primaries()}
        return [server for server in self.servers if server.port in ports]

    def heal(self) -> None:
        for server in self.servers:
            server.start()
        wait_for(self.healthy, what="the redis cluster to be ready again")

    @property
    def url(self) -> str:
        return self.servers[0].url

    def scaling(self) -> dict[str, Any]:
        return {"driver": "redis-cluster", "redis_url": self.url}

    def target(self) -> RedisTarget:
        return RedisTarget(topology="redis-cluster", url=self.url)

    def client(self) -> Any:
        running = next(server for server in self.servers if server.running)
        return SyncRedisCluster(host="127.0.0.1", port=running.port)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall(target_nodes=SyncRedisCluster.PRIMARIES)
            client.execute_command("SCRIPT", "FLUSH", target_nodes=SyncRedisCluster.ALL_NODES)

    def owner(self, name: str) -> int:
        """The port of the master that owns the slot of ``name`` now."""
        with self.client() as client:
            return int(client.get_node_from_key(name).port)

    def shard_listeners(self, name: str) -> dict[int, int]:
        """``PUBSUB SHARDNUMSUB name`` on every master: port -> subscribers."""
        counts = {}
        for server in self.masters():
            with redis.Redis(port=server.port) as client:
                reply = client.execute_command("PUBSUB", "SHARDNUMSUB", name)
                counts[server.port] = int(reply[1])
        return counts

    def listeners(self, name: str) -> int:
        return sum(self.shard_listeners(name).values())


_MAKERS: dict[str, Callable[[], Topology]] = {
    "single": SingleTopology,
    "tls": TlsTopology,
    "sentinel": SentinelTopology,
    "cluster": ClusterTopology,
}


def _server_major() -> int:
    """The major version of the installed redis-server (``Redis server v=7.0.15 …``)."""
    out = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    found = re.search(r"v=(\d+)\.", out)
    return int(found.group(1)) if found else 0


class Topologies:
    """Each kind started once, on first ``get``; ``close`` stops them all."""

    def __init__(self) -> None:
        self._started: dict[str, Topology] = {}

    def get(self, kind: str) -> Topology:
        if not RedisServer.available() or shutil.which("redis-cli") is None:
            pytest.skip("redis-server or redis-cli is not installed")
        if kind == "tls" and shutil.which("openssl") is None:
            pytest.skip("openssl is not installed")
        if kind == "cluster" and _server_major() < 7:
            pytest.skip("sharded pub/sub needs redis-server 7 or later")
        if kind not in self._started:
            self._started[kind] = _MAKERS[kind]()
        return self._started[kind]

    def close(self) -> None:
        for topology in self._started.values():
            topology.close()
        self._started.clear()


def topologies() -> Iterator[Topologies]:
    """A session fixture body: yield a ``Topologies`` and stop everything after."""
    started = Topologies()
    try:
        yield started
    finally:
        started.close()
