/* Baseline for bench/watchdog.sh: the bare cost of what classic mode does per request, without
 * HTTP: posix_spawn the handler with piped stdin/stdout, write the body, read all output, wait.
 * Usage: watchdog_forker N BODY CMD [ARGS...]  -> prints "ops/s p50_us p99_us". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int n = atoi(argv[1]);
  const char *body = argv[2];
  double *lat = calloc((size_t)n, sizeof(double));
  double start = now_us();
  for (int i = 0; i < n; ++i) {
    double t0 = now_us();
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    pid_t pid;
    if (posix_spawnp(&pid, argv[3], &fa, NULL, argv + 3, environ) != 0) return 1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (write(in[1], body, strlen(body)) < 0) return 1;
    close(in[1]);
    char buf[4096];
    while (read(out[0], buf, sizeof(buf)) > 0) {
    }
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    lat[i] = now_us() - t0;
  }
  double total = now_us() - start;
  qsort(lat, (size_t)n, sizeof(double), cmp);
  printf("%.0f %.0f %.0f\n", n / (total / 1e6), lat[n / 2], lat[(int)(n * 0.99)]);
  return 0;
}
