/* podexec NSFILE PROGRAM [ARGS…]: enters the mount namespace NSFILE
 * (/proc/PID/ns/mnt of a pod) and execs PROGRAM there, as a container
 * runtime's exec does, minus the runtime. Exit 126 if setns fails, 127 if
 * the exec does. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: podexec NSFILE PROGRAM [ARGS...]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNS) != 0) {
        perror("podexec: setns");
        return 126;
    }
    if (chdir("/") != 0) return 126;
    execv(argv[2], argv + 2);
    perror("podexec: exec");
    return 127;
}
