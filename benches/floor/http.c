/* The load generator of issue 13's HTTP throughput row: as little client as possible, so the
 * figure is the daemon's and not its client's. Opens CONNS keep-alive TCP connections to
 * HOST:PORT and sends COUNT `POST /api/sessions/spawn` requests over them, one request in
 * flight per connection (HTTP/1.1 without pipelining, as a client library does), all from one
 * thread with poll(2). Prints "NANOSECONDS ERRORS": from the first request written to the last
 * answer read, and how many answers were not 2xx (the first of them goes to stderr). Exits 1
 * when a connection fails or closes early. Only libc; built static by the benchmark:
 *
 *     gcc -O2 -static -o floor-http benches/floor/http.c
 *
 * usage: floor-http HOST PORT TOKEN COUNT CONNS TAG
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNS = 64, BUF = 1 << 14 };

struct conn {
    int fd;
    long left;    /* requests still to send on this connection */
    long waiting; /* 1 while a request is in flight */
    char buf[BUF];
    size_t have;
};

static const char *host, *token, *tag;
static int port;
static long next_id, errors;

static int send_request(struct conn *c) {
    char body[256], req[1024];
    int blen = snprintf(body, sizeof body, "{\"task\":\"http bench %s %ld\"}", tag, next_id++);
    int n = snprintf(req, sizeof req,
                     "POST /api/sessions/spawn HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     host, port, token, blen, body);
    if (blen < 0 || n < 0 || (size_t)n >= sizeof req)
        return -1;
    for (int sent = 0; sent < n;) {
        ssize_t w = write(c->fd, req + sent, (size_t)(n - sent));
        if (w <= 0)
            return -1;
        sent += (int)w;
    }
    c->left--;
    c->waiting = 1;
    return 0;
}

/* One whole answer at the start of c->buf: its length (head and body), 0 while incomplete,
 * -1 when it cannot be read (no Content-Length: this client only takes sized bodies). */
static long answer_length(struct conn *c, int *status) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end)
        return c->have == BUF ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi(c->buf + 9);
    long body = -1;
    for (char *p = c->buf; p < end; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            body = atol(p + 16);
            break;
        }
    }
    if (body < 0 || head + (size_t)body > BUF)
        return -1;
    return c->have >= head + (size_t)body ? (long)(head + (size_t)body) : 0;
}

/* Reads what arrived on c; sends the next request once its answer is whole. */
static int on_readable(struct conn *c) {
    ssize_t n = read(c->fd, c->buf + c->have, BUF - c->have);
    if (n <= 0)
        return -1;
    c->have += (size_t)n;
    int status = 0;
    long len = answer_length(c, &status);
    if (len < 0)
        return -1;
    if (len == 0)
        return 0;
    if (status < 200 || status > 299) {
        if (errors++ == 0 && write(2, c->buf, (size_t)len < 400 ? (size_t)len : 400) < 0)
            return -1;
    }
    memmove(c->buf, c->buf + len, c->have - (size_t)len);
    c->have -= (size_t)len;
    c->waiting = 0;
    return c->left > 0 ? send_request(c) : 0;
}

int main(int argc, char **argv) {
    if (argc != 7)
        return 2;
    host = argv[1];
    port = atoi(argv[2]);
    token = argv[3];
    long count = atol(argv[4]), conns = atol(argv[5]);
    tag = argv[6];
    if (count <= 0 || conns <= 0 || conns > MAX_CONNS || port <= 0)
        return 2;
    static struct conn c[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return 2;
    for (long i = 0; i < conns; i++) {
        c[i].left = count / conns + (i < count % conns);
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
            setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            return 1;
        pfd[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < conns; i++)
        if (c[i].left > 0 && send_request(&c[i]) < 0)
            return 1;
    for (;;) {
        long busy = 0;
        for (long i = 0; i < conns; i++)
            busy += c[i].waiting;
        if (busy == 0)
            break;
        if (poll(pfd, (nfds_t)conns, -1) < 0)
            return 1;
        for (long i = 0; i < conns; i++) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!c[i].waiting || on_readable(&c[i]) < 0) {
                    fprintf(stderr, "floor-http: connection %ld failed or closed early\n", i);
                    return 1;
                }
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("%lld %ld\n", ns, errors);
    return 0;
}
