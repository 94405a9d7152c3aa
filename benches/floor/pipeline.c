/* The load generator of issue 16's throughput rows: as little client as possible, so the
 * figure is the daemon's and not its client's. Opens CONNS connections to the socket argv[1],
 * then on each at once writes its share of COUNT `sessions.spawn` requests back to back (one
 * thread) while another thread reads the replies. Prints "NANOSECONDS ERRORS": from the first
 * request written to the last reply read, and how many replies were errors. Exits 1 when a
 * connection fails or closes early; the first error reply of each connection goes to stderr.
 * Only libc and pthreads; built static by the benchmark:
 *
 *     gcc -O2 -static -pthread -o floor-pipeline benches/floor/pipeline.c
 *
 * usage: floor-pipeline SOCKET COUNT CONNS TAG
 */
#define _GNU_SOURCE /* memmem */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    char *requests;
    size_t len;
    long count;
    long errors;
    int failed;
};

static pthread_barrier_t start;

static void *write_all(void *arg) {
    struct conn *c = arg;
    size_t sent = 0;
    while (sent < c->len) {
        ssize_t n = write(c->fd, c->requests + sent, c->len - sent);
        if (n <= 0) {
            c->failed = 1;
            return NULL;
        }
        sent += (size_t)n;
    }
    return NULL;
}

/* Reads c->count reply lines, counting the `"error":` members among them (a spawn's result
 * has none). The needle's last bytes are carried from one read to the next, so one split
 * across two reads still counts. */
static void *read_replies(void *arg) {
    static const char needle[] = "\"error\":";
    enum { NEEDLE = sizeof needle - 1 };
    struct conn *c = arg;
    static __thread char buf[NEEDLE + (1 << 16)];
    size_t carried = 0;
    long lines = 0;
    while (lines < c->count) {
        ssize_t n = read(c->fd, buf + carried, sizeof buf - carried);
        if (n <= 0) {
            c->failed = 1;
            return NULL;
        }
        char *fresh = buf + carried, *end = fresh + n;
        for (char *p = fresh; (p = memchr(p, '\n', (size_t)(end - p))); p++)
            lines++;
        for (char *p = buf; (p = memmem(p, (size_t)(end - p), needle, NEEDLE)); p += NEEDLE) {
            /* The first error reply, to stderr, so a run with errors says what they were. */
            if (c->errors++ == 0) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);
                if (write(2, p, len < 300 ? len : 300) < 0 || write(2, "\n", 1) < 0)
                    c->failed = 1;
            }
        }
        carried = (size_t)(end - buf) < NEEDLE - 1 ? (size_t)(end - buf) : NEEDLE - 1;
        memmove(buf, end - carried, carried);
    }
    return NULL;
}

static void *run(void *arg) {
    struct conn *c = arg;
    pthread_t writer;
    pthread_barrier_wait(&start);
    if (pthread_create(&writer, NULL, write_all, c) != 0) {
        c->failed = 1;
        return NULL;
    }
    read_replies(c);
    pthread_join(writer, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return 2;
    long count = atol(argv[2]), conns = atol(argv[3]);
    if (count <= 0 || conns <= 0 || conns > 64)
        return 2;
    struct conn c[64];
    pthread_t threads[64];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, argv[1]);
    long id = 0;
    for (long i = 0; i < conns; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].count = count / conns + (i < count % conns);
        c[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            return 1;
        size_t cap = (size_t)c[i].count * (128 + strlen(argv[4]));
        c[i].requests = malloc(cap);
        if (!c[i].requests)
            return 1;
        for (long k = 0; k < c[i].count; k++, id++) {
            int n = snprintf(c[i].requests + c[i].len, cap - c[i].len,
                             "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"sessions.spawn\","
                             "\"params\":{\"task\":\"bench %s %ld\"}}\n",
                             id, argv[4], id);
            if (n < 0 || (size_t)n >= cap - c[i].len)
                return 1;
            c[i].len += (size_t)n;
        }
    }
    pthread_barrier_init(&start, NULL, (unsigned)conns + 1);
    for (long i = 0; i < conns; i++)
        if (pthread_create(&threads[i], NULL, run, &c[i]) != 0)
            return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_barrier_wait(&start);
    long errors = 0;
    int failed = 0;
    for (long i = 0; i < conns; i++) {
        pthread_join(threads[i], NULL);
        errors += c[i].errors;
        failed |= c[i].failed;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (failed)
        return 1;
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("%lld %ld\n", ns, errors);
    return 0;
}
