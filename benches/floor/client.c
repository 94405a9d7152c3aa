/* The client floor of issue 16: the least a program can do to make one call on the daemon's
 * socket. Connects to argv[1], sends one JSON-RPC request (argv[2] is the method: `spawn` for
 * `sessions.spawn {"task":"x"}`, `hello` for `hello {}`), reads the reply line, writes it to
 * stdout and exits 0 (1 on any failure). Only libc; built static by the benchmark:
 *
 *     gcc -O2 -static -o floor-client benches/floor/client.c
 */
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char SPAWN[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sessions.spawn\",\"params\":{\"task\":\"x\"}}\n";
static const char HELLO[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello\",\"params\":{}}\n";

int main(int argc, char **argv) {
    if (argc != 3 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return 2;
    const char *req = strcmp(argv[2], "hello") == 0 ? HELLO : SPAWN;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return 1;
    size_t len = strlen(req);
    if (write(fd, req, len) != (ssize_t)len)
        return 1;
    static char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
        if (memchr(buf, '\n', got) || got == sizeof buf)
            break;
    }
    return write(1, buf, got) == (ssize_t)got ? 0 : 1;
}
