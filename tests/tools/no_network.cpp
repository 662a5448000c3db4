// An LD_PRELOAD shim for the security tests: socket() for an Internet family (IPv4, IPv6) fails
// with EACCES and is recorded in the file $MSMEDCAP_NO_NETWORK_LOG; local families (AF_UNIX:
// glibc's name-service lookups) pass to the real socket().
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern "C" int socket(int domain, int type, int protocol) {
  if (domain == AF_INET || domain == AF_INET6) {
    if (const char* log = getenv("MSMEDCAP_NO_NETWORK_LOG")) {
      const int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        char line[64];
        const int n = snprintf(line, sizeof(line), "socket(%s)\n", domain == AF_INET ? "AF_INET" : "AF_INET6");
        if (n > 0) (void)!write(fd, line, static_cast<size_t>(n));
        close(fd);
      }
    }
    errno = EACCES;
    return -1;
  }
  using SocketFn = int (*)(int, int, int);
  static const auto real = reinterpret_cast<SocketFn>(dlsym(RTLD_NEXT, "socket"));
  return real(domain, type, protocol);
}
