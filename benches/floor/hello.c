/* The process floor of issue 16 for `openclaw --version`: a static program that prints one
 * line and exits. Only libc; built static by the benchmark:
 *
 *     gcc -O2 -static -o floor-hello benches/floor/hello.c
 */
#include <unistd.h>

int main(void) {
    static const char LINE[] = "openclaw 0.0.0\n";
    return write(1, LINE, sizeof LINE - 1) == (ssize_t)(sizeof LINE - 1) ? 0 : 1;
}
