# pusherd: a Pusher-protocol WebSocket server (drop-in for Laravel Reverb and soketi).
#
#   docker build -t pusherd .
#   docker run -p 8080:8080 -e PUSHERD_APP_ID=12345 -e PUSHERD_APP_KEY=app-key \
#       -e PUSHERD_APP_SECRET=app-secret pusherd
#
# Configure with PUSHERD_* / REVERB_* environment variables, or mount a TOML file and
# point PUSHERD_CONFIG at it:
#   docker run -v $PWD/config.toml:/etc/pusherd/config.toml:ro \
#       -e PUSHERD_CONFIG=/etc/pusherd/config.toml -p 8080:8080 pusherd

# ---- builder: install pusherd and its dependencies into a self-contained venv ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/pusherd
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pusherd ./pusherd
RUN /opt/pusherd/bin/pip install . \
    && /opt/pusherd/bin/python -m compileall -q /opt/pusherd/lib

# ---- runtime: the venv only, run as an unprivileged user ----
FROM python:3.11-slim

ENV PATH=/opt/pusherd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUSHERD_HOST=0.0.0.0

RUN groupadd --system --gid 10001 pusherd \
    && useradd --system --uid 10001 --gid pusherd --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin pusherd

COPY --from=builder /opt/pusherd /opt/pusherd

USER pusherd:pusherd
WORKDIR /tmp
EXPOSE 8080

# /up answers 200 while the process serves (/ready, for proxies and Kubernetes, also turns
# 503 while draining). The port, path prefix and TLS come from the same config the server
# loads (PUSHERD_CONFIG and PUSHERD_*/REVERB_* variables). The slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import ssl, urllib.request; from pusherd.config import load_config; s = load_config().server; urllib.request.urlopen(('https' if s.tls else 'http') + f'://127.0.0.1:{s.port}{s.path_prefix}/up', timeout=2, context=ssl._create_unverified_context())"]

# SIGTERM (docker stop, Kubernetes) starts the graceful drain: sockets close with 4200 so
# clients reconnect to another replica. Give it time: docker stop --time 15.
STOPSIGNAL SIGTERM
CMD ["pusherd", "serve"]
