/* One SNTP exchange with 127.0.0.1:PORT on a fresh connected UDP socket;
 * prints the NTP delay δ = (T4 − T1) − (T3 − T2) in seconds. T1 is read just
 * before send(), T4 just after recv() returns (CLOCK_REALTIME); with a second
 * argument `k`, T4 is the kernel's receive stamp (SO_TIMESTAMPNS), as chronyd
 * and ntpd-rs take it. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double ntp(const unsigned char *b) {
    uint32_t s, f;
    memcpy(&s, b, 4);
    memcpy(&f, b + 4, 4);
    return (double)ntohl(s) - 2208988800.0 + ntohl(f) / 4294967296.0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int kernel = argc > 2 && argv[2][0] == 'k';
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int on = 1;
    if (kernel && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) return 1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    unsigned char req[48] = {0x23}, rep[1024];
    if (getrandom(req + 40, 8, 0) != 8) return 1;
    struct timespec t1, t4;
    clock_gettime(CLOCK_REALTIME, &t1);
    if (send(fd, req, 48, 0) != 48) return 1;
    ssize_t n;
    if (kernel) {
        union { char buf[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } c;
        struct iovec iov = {rep, sizeof rep};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
        n = recvmsg(fd, &m, 0);
        clock_gettime(CLOCK_REALTIME, &t4);
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS)
                memcpy(&t4, CMSG_DATA(h), sizeof t4);
    } else {
        n = recv(fd, rep, sizeof rep, 0);
        clock_gettime(CLOCK_REALTIME, &t4);
    }
    if (n < 48 || memcmp(rep + 24, req + 40, 8) != 0) return 1;
    double d = (t4.tv_sec - t1.tv_sec) + (t4.tv_nsec - t1.tv_nsec) / 1e9 - (ntp(rep + 40) - ntp(rep + 32));
    printf("%.9f\n", d);
    return 0;
}
