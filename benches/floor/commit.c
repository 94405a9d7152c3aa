/* The commit floor made the way the client floor's calls are made (issue 16): one durable
 * write from a fresh process, so the disk and the CPUs have been idle since the last one, as
 * the daemon has been between two of the client floor's spawns. Opens the preallocated file
 * argv[1], writes one 4 KiB page at page index argv[2], `fdatasync`s it, and prints the
 * nanoseconds of the `fdatasync` alone (what the back-to-back commit floor times too). Exits 1
 * on any failure. Only libc; built static by the benchmark:
 *
 *     gcc -O2 -static -o floor-commit benches/floor/commit.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    static char page[4096];
    memset(page, 0x5a, sizeof page);
    long index = strtol(argv[2], NULL, 10);
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, page, sizeof page, index * (long)sizeof page) != sizeof page)
        return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fdatasync(fd) != 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    return printf("%ld\n", ns) > 0 ? 0 : 1;
}
