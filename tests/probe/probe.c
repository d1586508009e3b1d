/* togo-probe: a tiny static program run inside environments. It reports what
 * it sees, one `key=value` per line, so tests assert on facts rather than on
 * the output of tools that may not be in the image.
 *
 *   togo-probe                 the report (keys below)
 *   togo-probe exit N          exits with status N
 *   togo-probe kill SIG        kills itself with signal number SIG
 *   togo-probe cat PATH        copies PATH to stdout
 *   togo-probe write PATH TEXT creates/truncates PATH, writes TEXT (no newline
 *                              added) and fsyncs it
 *
 * Report keys, in order: hostname pid ppid uid gid euid uid_map gid_map cwd
 * os_id cap_eff no_new_privs seccomp root_fstype, then one
 * `mount=<mountpoint> <fstype>` per line of /proc/self/mountinfo (mount points
 * keep the kernel's octal escapes, so a space is `\040`), then `fds=` (open fd
 * numbers, space-separated, without the one used to list them).
 * A value that cannot be read is left empty and the reason goes to stderr;
 * the report still exits 0 so a test sees everything that could be seen.
 * Subcommands print `togo-probe: <what>: <why>` and exit 1 on failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *why) {
  fprintf(stderr, "togo-probe: %s: %s\n", what, why);
  return 1;
}

/* Reads a whole small file into a malloc'ed, NUL-terminated buffer, or NULL
 * with the reason printed to stderr. */
static char *slurp(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      close(fd);
      fail(path, "out of memory");
      return NULL;
    }
    if (len + 1 >= cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
      continue;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fail(path, strerror(errno));
      free(buf);
      close(fd);
      return NULL;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return buf;
}

/* "0 1000 1\n" lines -> "0 1000 1,...": fields separated by single spaces. */
static void print_id_map(const char *key, const char *path) {
  char *text = slurp(path);
  printf("%s=", key);
  if (text) {
    int first_line = 1;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      int first_field = 1;
      for (char *s2 = NULL, *f = strtok_r(line, " \t", &s2); f; f = strtok_r(NULL, " \t", &s2)) {
        if (first_field && !first_line) putchar(',');
        if (!first_field) putchar(' ');
        fputs(f, stdout);
        first_field = 0;
        first_line = 0;
      }
    }
    free(text);
  }
  putchar('\n');
}

/* The value after "Name:" in /proc/self/status, whitespace trimmed. */
static void print_status_field(const char *key, const char *status, const char *name) {
  printf("%s=", key);
  size_t n = strlen(name);
  for (const char *line = status; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > n && strncmp(line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1;
      while (v < line + len && (*v == ' ' || *v == '\t')) v++;
      fwrite(v, 1, (size_t)(line + len - v), stdout);
      break;
    }
    line = end ? end + 1 : NULL;
  }
  putchar('\n');
}

/* ID= from os-release, with one level of single or double quotes removed. */
static void print_os_id(void) {
  char *text = slurp("/etc/os-release");
  printf("os_id=");
  for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "ID=", 3) != 0) continue;
    char *v = line + 3;
    size_t len = strlen(v);
    if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
      v[len - 1] = '\0';
      v++;
    }
    fputs(v, stdout);
    break;
  }
  putchar('\n');
  free(text);
}

/* Splits a mountinfo line into its mount point and filesystem type (pointers
 * into `line`, which is modified). Returns 0 if the line is malformed. */
static int parse_mountinfo(char *line, char **mountpoint, char **fstype) {
  char *field[5];
  char *save = NULL;
  char *tok = strtok_r(line, " ", &save);
  for (int i = 0; i < 5; i++) {
    if (!tok) return 0;
    field[i] = tok;
    tok = strtok_r(NULL, " ", &save);
  }
  /* Optional fields end with a lone "-"; the type follows it. */
  while (tok && strcmp(tok, "-") != 0) tok = strtok_r(NULL, " ", &save);
  if (!tok) return 0;
  tok = strtok_r(NULL, " ", &save);
  if (!tok) return 0;
  *mountpoint = field[4];
  *fstype = tok;
  return 1;
}

static void print_mounts(void) {
  char *text = slurp("/proc/self/mountinfo");
  char *root_type = NULL;
  size_t count = 0;
  char **lines = NULL;
  if (text) {
    for (char *p = text; *p; p++) count += *p == '\n';
    lines = calloc(count + 1, 2 * sizeof(char *));
    if (!lines) count = 0;
  }
  size_t n = 0;
  for (char *save = NULL, *line = (text && lines) ? strtok_r(text, "\n", &save) : NULL; line;
       line = strtok_r(NULL, "\n", &save)) {
    char *mp, *type;
    if (!parse_mountinfo(line, &mp, &type) || n > count) continue;
    lines[2 * n] = mp;
    lines[2 * n + 1] = type;
    n++;
    /* Later lines are mounted on top of earlier ones: the last "/" wins. */
    if (strcmp(mp, "/") == 0) root_type = type;
  }
  printf("root_fstype=%s\n", root_type ? root_type : "");
  for (size_t i = 0; i < n; i++) printf("mount=%s %s\n", lines[2 * i], lines[2 * i + 1]);
  free(lines);
  free(text);
}

static void print_fds(void) {
  printf("fds=");
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    fail("/proc/self/fd", strerror(errno));
  } else {
    int self = dirfd(d), first = 1;
    for (struct dirent *e; (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      if (atoi(e->d_name) == self) continue;
      printf("%s%s", first ? "" : " ", e->d_name);
      first = 0;
    }
    closedir(d);
  }
  putchar('\n');
}

static int report(void) {
  char host[HOST_NAME_MAX + 1] = "";
  if (gethostname(host, sizeof host) < 0) fail("gethostname", strerror(errno));
  host[HOST_NAME_MAX] = '\0';
  printf("hostname=%s\n", host);
  printf("pid=%d\nppid=%d\n", (int)getpid(), (int)getppid());
  printf("uid=%u\ngid=%u\neuid=%u\n", (unsigned)getuid(), (unsigned)getgid(),
         (unsigned)geteuid());
  print_id_map("uid_map", "/proc/self/uid_map");
  print_id_map("gid_map", "/proc/self/gid_map");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) {
    fail("getcwd", strerror(errno));
    cwd[0] = '\0';
  }
  printf("cwd=%s\n", cwd);
  print_os_id();
  char *status = slurp("/proc/self/status");
  print_status_field("cap_eff", status, "CapEff");
  print_status_field("no_new_privs", status, "NoNewPrivs");
  print_status_field("seccomp", status, "Seccomp");
  free(status);
  print_mounts();
  /* Flush before listing fds so stdio has opened everything it will. */
  fflush(stdout);
  print_fds();
  if (fflush(stdout) != 0 || ferror(stdout)) return fail("writing the report", strerror(errno));
  return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return 0;
  *out = (int)v;
  return 1;
}

static int cmd_kill(const char *arg) {
  int sig;
  if (!parse_int(arg, 1, 64, &sig)) return fail("kill", "SIG must be a signal number");
  /* Make sure the signal can act: default action, not blocked. */
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  if (kill(getpid(), sig) < 0) return fail("kill", strerror(errno));
  /* A signal whose default is to be ignored, or a pid 1 that the kernel
   * protects, lands here. */
  fprintf(stderr, "togo-probe: kill: still alive after signal %d\n", sig);
  return 1;
}

static int cmd_cat(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(path, strerror(errno));
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(path, strerror(errno));
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(1, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail("writing stdout", strerror(errno));
      off += w;
    }
  }
  close(fd);
  return 0;
}

static int cmd_write(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(path, strerror(errno));
  size_t len = strlen(text);
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail(path, strerror(errno));
    off += (size_t)w;
  }
  if (fsync(fd) < 0) return fail(path, strerror(errno));
  if (close(fd) < 0) return fail(path, strerror(errno));
  return 0;
}

static int usage(void) {
  fputs("usage: togo-probe [exit N | kill SIG | cat PATH | write PATH TEXT]\n", stderr);
  return 1;
}

int main(int argc, char **argv) {
  if (argc == 1) return report();
  const char *cmd = argv[1];
  if (strcmp(cmd, "exit") == 0 && argc == 3) {
    int code;
    if (!parse_int(argv[2], 0, 255, &code)) return fail("exit", "N must be 0..255");
    return code;
  }
  if (strcmp(cmd, "kill") == 0 && argc == 3) return cmd_kill(argv[2]);
  if (strcmp(cmd, "cat") == 0 && argc == 3) return cmd_cat(argv[2]);
  if (strcmp(cmd, "write") == 0 && argc == 4) return cmd_write(argv[2], argv[3]);
  return usage();
}
