/*
 * loadgen.c - Pusher-protocol (v7) load generator for pusherd's bench/ harness.
 *
 * One epoll loop, one thread, so it can be pinned to one core with taskset and its own CPU
 * share (getrusage) reported next to the server's. Built by bench/build.py into a temp dir.
 *
 * Modes (all talk to 127.0.0.1 only):
 *   sub    open --conns WebSockets, subscribe each to <prefix><i % channels> (public, or
 *          presence-<prefix><i % channels> with a client-side HMAC auth), print "READY ..." once
 *          all are subscribed, then count deliveries. Every event's data carries "~s<seq>~t<us>~":
 *          a 64-wide anti-replay window per socket finds duplicates, the CLOCK_REALTIME stamp
 *          gives publish-to-receive latency. stdin commands: STATS (one JSON line), RESET
 *          (zero counters and histogram), WAIT <n> <seconds> (STATS once n deliveries were
 *          counted or the time is up), QUIT.
 *   pub    signed REST POST /apps/{id}/events over --conns keep-alive connections (reconnecting
 *          when the server closes), at --rate events/s (0 = as fast as responses come back) for
 *          --duration seconds, round-robin over the channels; prints one JSON line at the end.
 *          --close 1 asks for "Connection: close": a new TCP connection per request, as a
 *          backend that does not keep connections (PHP-FPM, one publish per request) makes.
 *   churn  --concurrency slots, each looping connect, subscribe, close handshake, for
 *          --duration seconds (at most --rate cycles/s when > 0); prints one JSON line
 *          (completed cycles, errors, own CPU).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_FREE, ST_CONNECTING, ST_UPGRADE, ST_WAIT_EST, ST_SUBSCRIBING, ST_SUBSCRIBED,
       ST_CLOSING, ST_HTTP_IDLE, ST_HTTP_WAIT };

typedef struct {
    int fd;
    int idx;      /* logical index: channel / user id */
    uint8_t state;
    uint32_t gen; /* bumped on every drop: callers detect a slot reused under them */
    uint64_t max_seq, win;
    char *pend;
    uint32_t plen, pcap;
    double deadline; /* churn close-wait / http request start */
    uint64_t seq;    /* pub: seq of the outstanding request */
} conn_t;

/* options */
static const char *mode = "sub", *key = "app-key", *secret = "app-secret", *app_id = "12345";
static const char *prefix = "bench";
static int port = 6001, nconns = 1, nchannels = 1, presence = 0, concurrency = 256;
static double rate = 0, duration = 1, connect_timeout = 120;
static uint64_t seq_base = 0;
static int id_base = 0, padding = 0, close_each = 0;

/* state */
static int ep;
static conn_t *conns;
static char rbuf[1 << 20];
static uint32_t mask_key = 0x5a3c9e71u;

/* stats */
#define HBUCKETS 200000 /* 10 us each, 2 s */
static uint32_t hist[HBUCKETS + 1];
static uint64_t deliveries, dups, late, errors, closed, others, subscribed, failed, hmax;
static uint64_t cycles, http_ok, http_bad, reconnects, sent_events, started;
static uint64_t *per_channel;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t realtime_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void hist_add(int64_t us) {
    if (us < 0) us = 0;
    if ((uint64_t)us > hmax) hmax = us;
    uint64_t b = us / 10;
    hist[b > HBUCKETS ? HBUCKETS : b]++;
}

static uint64_t hist_pct(double p) {
    uint64_t total = 0, acc = 0;
    for (int i = 0; i <= HBUCKETS; i++) total += hist[i];
    if (!total) return 0;
    uint64_t want = (uint64_t)(p * total);
    if (want >= total) want = total - 1;
    for (int i = 0; i <= HBUCKETS; i++) {
        acc += hist[i];
        if (acc > want) return (uint64_t)i * 10 + 5;
    }
    return hmax;
}

static void hex(const unsigned char *in, int n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

static void hmac_hex(const char *msg, size_t len, char *out) {
    unsigned char mac[32];
    unsigned int mlen = 32;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, len, mac, &mlen);
    hex(mac, 32, out);
}

static void md5_hex(const char *msg, size_t len, char *out) {
    unsigned char d[16];
    unsigned int dlen = 16;
    EVP_Digest(msg, len, d, &dlen, EVP_md5(), NULL);
    hex(d, 16, out);
}

/* ---------- connection plumbing ---------- */

static int tcp_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void ep_set(conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, op, c->fd, &ev);
}

static int send_all(conn_t *c, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(c->fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1; /* EAGAIN on a tiny control write: treat as an error */
        }
        buf += n;
        len -= n;
    }
    return 0;
}

static int ws_send_text(conn_t *c, const char *payload, size_t len) {
    char frame[1024];
    size_t h = 0;
    if (len + 14 > sizeof frame) return -1;
    frame[h++] = (char)0x81;
    if (len < 126) {
        frame[h++] = (char)(0x80 | len);
    } else {
        frame[h++] = (char)(0x80 | 126);
        frame[h++] = (char)(len >> 8);
        frame[h++] = (char)(len & 0xff);
    }
    unsigned char mk[4];
    memcpy(mk, &mask_key, 4);
    memcpy(frame + h, mk, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) frame[h + i] = payload[i] ^ mk[i & 3];
    return send_all(c, frame, h + len);
}

static int ws_send_control(conn_t *c, int opcode, const char *payload, size_t len) {
    char frame[256];
    unsigned char mk[4];
    if (len > 125) len = 125;
    frame[0] = (char)(0x80 | opcode);
    frame[1] = (char)(0x80 | len);
    memcpy(mk, &mask_key, 4);
    memcpy(frame + 2, mk, 4);
    for (size_t i = 0; i < len; i++) frame[6 + i] = payload[i] ^ mk[i & 3];
    return send_all(c, frame, 6 + len);
}

static void conn_drop(conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->gen++;
    c->state = ST_FREE;
    c->plen = 0;
}

static void pend_keep(conn_t *c, const char *data, size_t len) {
    if (len > c->pcap) {
        c->pcap = len < 4096 ? 4096 : (uint32_t)len;
        c->pend = realloc(c->pend, c->pcap);
    }
    memmove(c->pend, data, len);
    c->plen = (uint32_t)len;
}

static int ws_open(conn_t *c) {
    c->fd = tcp_connect();
    if (c->fd < 0) return -1;
    c->state = ST_CONNECTING;
    c->plen = 0;
    c->max_seq = 0;
    c->win = 0;
    ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

static int ws_upgrade(conn_t *c) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /app/%s?protocol=7&client=bench&version=1.0 HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: YmVuY2gtbG9hZGdlbi0xMg==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     key, port);
    if (send_all(c, req, n) < 0) return -1;
    c->state = ST_UPGRADE;
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    return 0;
}

static int subscribe(conn_t *c, const char *msg, size_t len) {
    char chan[128], body[1024];
    int ch = (id_base + c->idx) % nchannels;
    snprintf(chan, sizeof chan, "%s%s%d", presence ? "presence-" : "", prefix, ch);
    int n;
    if (!presence) {
        n = snprintf(body, sizeof body,
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\",\"auth\":\"\"}}",
                     chan);
    } else {
        /* socket_id from the connection_established data string */
        const char *p = memmem(msg, len, "socket_id", 9);
        char sid[64];
        int k = 0;
        if (!p) return -1;
        p += 9;
        while (p < msg + len && !(*p >= '0' && *p <= '9')) p++;
        while (p < msg + len && k < 63 && ((*p >= '0' && *p <= '9') || *p == '.')) sid[k++] = *p++;
        sid[k] = 0;
        char cdata[128], tosign[512], sig[65];
        snprintf(cdata, sizeof cdata, "{\"user_id\":\"u%d\",\"user_info\":{}}",
                 id_base + c->idx);
        int tl = snprintf(tosign, sizeof tosign, "%s:%s:%s", sid, chan, cdata);
        hmac_hex(tosign, tl, sig);
        n = snprintf(body, sizeof body,
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\",\"auth\":"
                     "\"%s:%s\",\"channel_data\":\"{\\\"user_id\\\":\\\"u%d\\\","
                     "\\\"user_info\\\":{}}\"}}",
                     chan, key, sig, id_base + c->idx);
    }
    c->state = ST_SUBSCRIBING;
    return ws_send_text(c, body, n);
}

static void on_subscribed(conn_t *c);
static void on_closed(conn_t *c, int error);

static void on_event(conn_t *c, const char *p, size_t len) {
    const char *m = memmem(p, len, "~s", 2);
    const char *end = p + len;
    uint64_t s = 0, t = 0;
    m += 2;
    while (m < end && *m >= '0' && *m <= '9') s = s * 10 + (*m++ - '0');
    if (m + 2 < end && m[0] == '~' && m[1] == 't') {
        m += 2;
        while (m < end && *m >= '0' && *m <= '9') t = t * 10 + (*m++ - '0');
    }
    if (s > c->max_seq) {
        uint64_t shift = s - c->max_seq;
        c->win = shift >= 64 ? 1 : (c->win << shift) | 1;
        c->max_seq = s;
    } else {
        uint64_t d = c->max_seq - s;
        if (d >= 64) {
            late++;
        } else if (c->win & (1ull << d)) {
            dups++;
            return;
        } else {
            c->win |= 1ull << d;
        }
    }
    deliveries++;
    if (t) hist_add((int64_t)(realtime_us() - t));
}

static void on_text(conn_t *c, const char *p, size_t len) {
    if (c->state == ST_SUBSCRIBED) {
        if (memmem(p, len, "~s", 2)) {
            on_event(c, p, len);
        } else if (memmem(p, len, "\"pusher:ping\"", 13)) {
            ws_send_text(c, "{\"event\":\"pusher:pong\",\"data\":{}}", 33);
        } else if (memmem(p, len, "\"pusher:error\"", 14)) {
            errors++;
        } else {
            others++;
        }
        return;
    }
    if (c->state == ST_WAIT_EST) {
        if (memmem(p, len, "pusher:connection_established", 29)) {
            if (subscribe(c, p, len) < 0) on_closed(c, 1);
        } else if (memmem(p, len, "pusher:error", 12)) {
            on_closed(c, 1);
        }
        return;
    }
    if (c->state == ST_SUBSCRIBING) {
        if (memmem(p, len, "subscription_succeeded", 22)) {
            on_subscribed(c);
        } else if (memmem(p, len, "pusher:error", 12) ||
                   memmem(p, len, "subscription_error", 18)) {
            on_closed(c, 1);
        }
        return;
    }
}

/* Parse complete WebSocket frames from buf; returns bytes consumed, -1 when c was closed. */
static ssize_t ws_frames(conn_t *c, const char *buf, size_t len) {
    size_t off = 0;
    uint32_t gen = c->gen;
    while (len - off >= 2) {
        const unsigned char *h = (const unsigned char *)buf + off;
        int opcode = h[0] & 0x0f;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (len - off < 4) break;
            plen = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | h[2 + i];
            hl = 10;
        }
        if (h[1] & 0x80) hl += 4; /* servers must not mask; tolerate */
        if (len - off < hl + plen) break;
        const char *payload = buf + off + hl;
        off += hl + plen;
        if (opcode == 1 || opcode == 0) {
            on_text(c, payload, plen);
            if (c->gen != gen) return -1;
        } else if (opcode == 8) {
            if (c->state == ST_CLOSING) {
                on_closed(c, 0);
            } else {
                closed++;
                on_closed(c, 1);
            }
            return -1;
        } else if (opcode == 9) {
            ws_send_control(c, 10, payload, plen);
        }
        if (c->gen != gen) return -1;
    }
    return (ssize_t)off;
}

static void on_readable(conn_t *c) {
    size_t have = c->plen;
    if (have) memcpy(rbuf, c->pend, have);
    ssize_t n = read(c->fd, rbuf + have, sizeof rbuf - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        if (c->state == ST_CLOSING) {
            on_closed(c, 0);
        } else {
            closed++;
            on_closed(c, 1);
        }
        return;
    }
    size_t len = have + n;
    const char *p = rbuf;
    if (c->state == ST_UPGRADE) {
        const char *e = memmem(p, len, "\r\n\r\n", 4);
        if (!e) {
            pend_keep(c, p, len);
            return;
        }
        if (len < 12 || memcmp(p + 9, "101", 3) != 0) {
            on_closed(c, 1);
            return;
        }
        size_t hl = e + 4 - p;
        p += hl;
        len -= hl;
        c->state = ST_WAIT_EST;
    }
    ssize_t used = ws_frames(c, p, len);
    if (used < 0) return;
    pend_keep(c, p + used, len - used);
}

/* ---------- sub / churn ---------- */

static int next_idx = 0, active = 0;
static double t_end, t_start;

/* churn --rate: may another cycle start now? */
static int churn_allowed(double t) { return rate <= 0 || (double)started < rate * (t - t_start); }

static void start_more(void) {
    while (active < concurrency && next_idx < nconns) {
        conn_t *c = &conns[next_idx];
        c->idx = next_idx++;
        if (ws_open(c) < 0) {
            failed++;
            continue;
        }
        active++;
    }
}

static void on_subscribed(conn_t *c) {
    if (*mode == 's') {
        c->state = ST_SUBSCRIBED;
        subscribed++;
        active--;
        return;
    }
    /* churn: start the close handshake, wait (bounded) for the server to finish it */
    c->state = ST_CLOSING;
    c->deadline = now_s() + 2.0;
    ws_send_control(c, 8, "\x03\xe8", 2);
}

static void on_closed(conn_t *c, int error) {
    int was_setup = c->state != ST_SUBSCRIBED && c->state != ST_CLOSING;
    conn_drop(c);
    if (*mode == 's') {
        if (was_setup) {
            failed++;
            active--;
        }
        if (error) errors += !was_setup;
        return;
    }
    /* churn: count and restart the slot */
    if (error) errors++;
    else cycles++;
    double t = now_s();
    if (t < t_end && churn_allowed(t)) {
        c->idx = next_idx++;
        if (ws_open(c) < 0) errors++;
        started++;
    }
}

static void ws_event(conn_t *c, uint32_t ev) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (ev & (EPOLLERR | EPOLLHUP)) || ws_upgrade(c) < 0) on_closed(c, 1);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

static void print_stats(void) {
    printf("{\"deliveries\":%lu,\"dups\":%lu,\"late\":%lu,\"errors\":%lu,\"closed\":%lu,"
           "\"others\":%lu,\"subscribed\":%lu,\"failed\":%lu,\"p50_us\":%lu,\"p90_us\":%lu,"
           "\"p99_us\":%lu,\"max_us\":%lu,\"cpu_s\":%.6f}\n",
           deliveries, dups, late, errors, closed, others, subscribed, failed, hist_pct(0.5),
           hist_pct(0.9), hist_pct(0.99), hmax, cpu_self());
    fflush(stdout);
}

static uint64_t wait_for;
static double wait_until;

static int handle_stdin(void) {
    static char line[256];
    static size_t ll;
    ssize_t n = read(0, line + ll, sizeof line - 1 - ll);
    if (n <= 0) return 1;
    ll += n;
    char *nl;
    while ((nl = memchr(line, '\n', ll))) {
        *nl = 0;
        if (!strcmp(line, "STATS")) {
            print_stats();
        } else if (!strcmp(line, "RESET")) {
            deliveries = dups = late = errors = closed = others = hmax = 0;
            memset(hist, 0, sizeof hist);
        } else if (!strncmp(line, "WAIT ", 5)) {
            /* WAIT <deliveries> <seconds>: answer with STATS once reached or timed out */
            char *rest;
            wait_for = strtoull(line + 5, &rest, 10);
            wait_until = now_s() + strtod(rest, NULL);
        } else if (!strcmp(line, "QUIT")) {
            return 1;
        }
        size_t used = nl + 1 - line;
        memmove(line, nl + 1, ll - used);
        ll -= used;
    }
    return 0;
}

static int run_sub(void) {
    struct epoll_event evs[512];
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
    double t0 = now_s();
    int ready = 0;
    start_more();
    for (;;) {
        int n = epoll_wait(ep, evs, 512, 50);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                if (handle_stdin()) return 0;
                continue;
            }
            ws_event(evs[i].data.ptr, evs[i].events);
        }
        if (wait_until > 0 && (deliveries >= wait_for || now_s() >= wait_until)) {
            wait_until = 0;
            print_stats();
        }
        if (!ready) {
            start_more();
            if (subscribed + failed >= (uint64_t)nconns || now_s() - t0 > connect_timeout) {
                printf("READY %lu %lu %.3f\n", subscribed, failed, now_s() - t0);
                fflush(stdout);
                ready = 1;
            }
        }
    }
}

static int run_churn(void) {
    struct epoll_event evs[512];
    double t0 = now_s(), c0 = cpu_self();
    t_start = t0;
    t_end = t0 + duration;
    nconns = 1 << 30; /* idx keeps growing: unique user ids */
    next_idx = 0;
    for (int i = 0; i < concurrency; i++) {
        conn_t *c = &conns[i];
        c->idx = next_idx++;
        if (ws_open(c) < 0) errors++;
        started++;
    }
    double hard_end = t_end + 5.0;
    for (;;) {
        int n = epoll_wait(ep, evs, 512, 20);
        for (int i = 0; i < n; i++) ws_event(evs[i].data.ptr, evs[i].events);
        double t = now_s();
        int live = 0;
        for (int i = 0; i < concurrency; i++) {
            conn_t *c = &conns[i];
            if (c->state == ST_FREE) {
                if (t < t_end && churn_allowed(t)) {
                    c->idx = next_idx++;
                    started++;
                    if (ws_open(c) < 0) errors++;
                    else live++;
                }
                continue;
            }
            live++;
            if (c->state == ST_CLOSING && t > c->deadline) on_closed(c, 0);
        }
        if ((t >= t_end && !live) || t > hard_end) break;
    }
    double el = now_s() - t0;
    printf("{\"cycles\":%lu,\"errors\":%lu,\"closed\":%lu,\"elapsed\":%.4f,\"cpu_s\":%.6f}\n",
           cycles, errors, closed, el, cpu_self() - c0);
    fflush(stdout);
    return 0;
}

/* ---------- pub ---------- */

static int http_open(conn_t *c) {
    c->fd = tcp_connect();
    if (c->fd < 0) return -1;
    c->state = ST_CONNECTING;
    c->plen = 0;
    ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

static uint64_t next_seq;
static int64_t rr;

static int http_send(conn_t *c) {
    char data[512], body[1024], md5[33], q[256], tosign[512], sig[65], req[2048];
    int ch = (int)(rr++ % nchannels);
    uint64_t seq = ++next_seq;
    int dl = snprintf(data, sizeof data, "~s%lu~t%lu~", seq, realtime_us());
    for (int i = 0; i < padding && dl < (int)sizeof data - 1; i++) data[dl++] = 'x';
    data[dl] = 0;
    int bl = snprintf(body, sizeof body, "{\"name\":\"e\",\"channel\":\"%s%d\",\"data\":\"%s\"}",
                      prefix, ch, data);
    md5_hex(body, bl, md5);
    int ql = snprintf(q, sizeof q, "auth_key=%s&auth_timestamp=%ld&auth_version=1.0&body_md5=%s",
                      key, (long)time(NULL), md5);
    int tl = snprintf(tosign, sizeof tosign, "POST\n/apps/%s/events\n%s", app_id, q);
    hmac_hex(tosign, tl, sig);
    (void)ql;
    int rl = snprintf(req, sizeof req,
                      "POST /apps/%s/events?%s&auth_signature=%s HTTP/1.1\r\n"
                      "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n%s"
                      "Content-Length: %d\r\n\r\n%s",
                      app_id, q, sig, port, close_each ? "Connection: close\r\n" : "", bl, body);
    if (send_all(c, req, rl) < 0) return -1;
    c->state = ST_HTTP_WAIT;
    c->deadline = now_s();
    c->seq = (uint64_t)ch;
    sent_events++;
    return 0;
}

static void http_fail(conn_t *c) {
    if (c->state == ST_HTTP_WAIT) http_bad++;
    conn_drop(c);
    reconnects++;
    if (http_open(c) < 0) errors++;
}

static void http_readable(conn_t *c) {
    size_t have = c->plen;
    if (have) memcpy(rbuf, c->pend, have);
    ssize_t n = read(c->fd, rbuf + have, sizeof rbuf - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        http_fail(c);
        return;
    }
    size_t len = have + n;
    const char *e = memmem(rbuf, len, "\r\n\r\n", 4);
    if (!e) {
        pend_keep(c, rbuf, len);
        return;
    }
    size_t hl = e + 4 - rbuf;
    long clen = 0;
    int close_after = 0, chunked = 0;
    for (const char *l = rbuf; l < e; l++) {
        if (*l != '\n') continue;
        if (!strncasecmp(l + 1, "content-length:", 15)) clen = strtol(l + 16, NULL, 10);
        if (!strncasecmp(l + 1, "connection: close", 17)) close_after = 1;
        if (!strncasecmp(l + 1, "transfer-encoding: chunked", 26)) chunked = 1;
    }
    size_t total = hl + clen;
    if (chunked) {
        const char *z = memmem(rbuf + hl, len - hl, "0\r\n\r\n", 5);
        if (!z) {
            pend_keep(c, rbuf, len);
            return;
        }
        total = z + 5 - rbuf;
    }
    if (len < total) {
        pend_keep(c, rbuf, len);
        return;
    }
    int status = len > 12 ? atoi(rbuf + 9) : 0;
    if (status >= 200 && status < 300) {
        http_ok++;
        per_channel[c->seq]++;
    } else {
        http_bad++;
        if (http_bad < 4) fprintf(stderr, "loadgen: HTTP %d: %.*s\n", status, (int)(len > 300 ? 300 : len), rbuf);
    }
    hist_add((int64_t)((now_s() - c->deadline) * 1e6));
    pend_keep(c, rbuf + total, len - total);
    c->state = ST_HTTP_IDLE;
    if (close_after || close_each) {
        conn_drop(c);
        reconnects++;
        if (http_open(c) < 0) errors++;
    }
}

static int run_pub(void) {
    struct epoll_event evs[512];
    per_channel = calloc(nchannels, sizeof *per_channel);
    next_seq = seq_base;
    for (int i = 0; i < nconns; i++) {
        conns[i].idx = i;
        if (http_open(&conns[i]) < 0) errors++;
    }
    double t0 = now_s(), c0 = cpu_self(), stop = t0 + duration, hard = stop + 10.0;
    for (;;) {
        double t = now_s();
        int waiting = 0;
        for (int i = 0; i < nconns; i++) {
            conn_t *c = &conns[i];
            if (c->state == ST_HTTP_WAIT) waiting++;
            if (c->state != ST_HTTP_IDLE || t >= stop) continue;
            if (rate > 0 && (double)sent_events >= rate * (t - t0)) continue;
            if (http_send(c) < 0) http_fail(c);
            else waiting++;
        }
        if ((t >= stop && !waiting) || t > hard) break;
        int timeout = rate > 0 ? 1 : 20;
        int n = epoll_wait(ep, evs, 512, timeout);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == ST_CONNECTING) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                    errors++;
                    conn_drop(c);
                    if (now_s() < stop && errors < 1000) http_open(c);
                    continue;
                }
                c->state = ST_HTTP_IDLE;
                ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
                continue;
            }
            http_readable(c);
        }
    }
    double el = now_s() - t0;
    printf("{\"sent\":%lu,\"ok\":%lu,\"bad\":%lu,\"errors\":%lu,\"reconnects\":%lu,"
           "\"elapsed\":%.4f,\"resp_p50_us\":%lu,\"resp_p99_us\":%lu,\"resp_max_us\":%lu,"
           "\"cpu_s\":%.6f,\"last_seq\":%lu,\"per_channel\":[",
           sent_events, http_ok, http_bad, errors, reconnects, el, hist_pct(0.5), hist_pct(0.99),
           hmax, cpu_self() - c0, next_seq);
    for (int i = 0; i < nchannels; i++) printf(i ? ",%lu" : "%lu", per_channel[i]);
    printf("]}\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--port")) port = atoi(v);
        else if (!strcmp(o, "--key")) key = v;
        else if (!strcmp(o, "--secret")) secret = v;
        else if (!strcmp(o, "--app-id")) app_id = v;
        else if (!strcmp(o, "--prefix")) prefix = v;
        else if (!strcmp(o, "--conns")) nconns = atoi(v);
        else if (!strcmp(o, "--channels")) nchannels = atoi(v);
        else if (!strcmp(o, "--presence")) presence = atoi(v);
        else if (!strcmp(o, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(o, "--rate")) rate = atof(v);
        else if (!strcmp(o, "--duration")) duration = atof(v);
        else if (!strcmp(o, "--connect-timeout")) connect_timeout = atof(v);
        else if (!strcmp(o, "--seq-base")) seq_base = strtoull(v, NULL, 10);
        else if (!strcmp(o, "--id-base")) id_base = atoi(v);
        else if (!strcmp(o, "--padding")) padding = atoi(v);
        else if (!strcmp(o, "--close")) close_each = atoi(v);
        else {
            fprintf(stderr, "loadgen: unknown option %s\n", o);
            return 2;
        }
    }
    if (nchannels < 1) nchannels = 1;
    if (nconns < 1) nconns = 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    int slots = !strcmp(mode, "churn") ? concurrency : nconns;
    conns = calloc(slots, sizeof *conns);
    for (int i = 0; i < slots; i++) conns[i].fd = -1;
    if (!strcmp(mode, "sub")) return run_sub();
    if (!strcmp(mode, "pub")) return run_pub();
    if (!strcmp(mode, "churn")) return run_churn();
    fprintf(stderr, "loadgen: unknown mode %s\n", mode);
    return 2;
}
