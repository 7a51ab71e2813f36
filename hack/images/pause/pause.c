/*
 * pause: the process that holds a pod's namespaces (the sandbox container).
 *
 * It sleeps until SIGTERM or SIGINT, then exits 0; as PID 1 of the pod's PID
 * namespace it also reaps every child that is handed to it, so none stays a
 * zombie. Built static, FROM scratch, by hack/images/pause/Dockerfile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int signo) {
    (void)signo;
    _exit(0);
}

static void on_child(int signo) {
    int saved = errno;
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int signo, void (*handler)(int), int flags) {
    struct sigaction action = {0};
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int main(void) {
    if (handle(SIGTERM, on_stop, 0) || handle(SIGINT, on_stop, 0) ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART)) {
        perror("pause: sigaction");
        return 1;
    }
    if (getpid() != 1) {
        fputs("pause: not PID 1; children of others are not reaped here\n", stderr);
    }
    for (;;) {
        pause();
    }
}
