/* tcp_proxy.c -- see tcp_proxy.h. */
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256

/* One direction of a connection: bytes read from `from`, owed to `to`. */
struct flow {
	char *buf;
	size_t len, cap;
	bool eof;  /* `from` sent FIN */
	bool shut; /* FIN passed on to `to` */
};

struct conn {
	bool cut;	  /* held: nothing delivered */
	int fd[2];	  /* 0: client side, 1: server side */
	struct flow f[2]; /* f[i]: from fd[i] to fd[1 - i] */
};

enum cmd { CMD_NONE, CMD_CUT, CMD_FREEZE, CMD_HEAL, CMD_RESET, CMD_STOP };

struct tp_proxy {
	struct sockaddr_in target;
	int lfd;
	unsigned port;
	int wake[2];
	pthread_t thread;

	pthread_mutex_t mu; /* guards cmd, done, nconns */
	pthread_cond_t cv;
	enum cmd cmd;
	unsigned long asked, done;
	size_t nconns;

	/* the thread's own */
	bool cut; /* new connections start cut */
	struct conn conns[MAX_CONNS];
	size_t n;
};

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

/*
 * Close with RST: SO_LINGER 0 discards what is unsent and aborts. A FIN
 * first, in sequence after what was sent: a client blocked in a read
 * sometimes waited out its timeout after the RST alone (about one reset
 * in twenty, under load), so the "reset" test measured a black hole; with
 * the FIN its read ends at once either way.
 */
static void close_rst(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	(void)shutdown(fd, SHUT_RDWR);
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void conn_free(struct conn *c, bool rst)
{
	for (int i = 0; i < 2; i++) {
		if (rst)
			close_rst(c->fd[i]);
		else
			close(c->fd[i]);
		free(c->f[i].buf);
	}
}

static void drop_conn(tp_proxy *p, size_t k, bool rst)
{
	conn_free(&p->conns[k], rst);
	p->conns[k] = p->conns[--p->n];
}

static void accept_one(tp_proxy *p)
{
	int cfd = accept(p->lfd, NULL, NULL);
	if (cfd < 0)
		return;
	int sfd = socket(AF_INET, SOCK_STREAM, 0);
	if (p->n == MAX_CONNS || sfd < 0 ||
	    connect(sfd, (struct sockaddr *)&p->target, sizeof(p->target)) !=
		0) {
		/* The target is down: the client sees what it would see. */
		if (sfd >= 0)
			close(sfd);
		close_rst(cfd);
		return;
	}
	nonblock(cfd);
	nonblock(sfd);
	struct conn *c = &p->conns[p->n++];
	memset(c, 0, sizeof(*c));
	c->fd[0] = cfd;
	c->fd[1] = sfd;
	c->cut = p->cut;
}

/* Read what fd i has into flow i. false: the connection failed. */
static bool pull(struct conn *c, int i)
{
	struct flow *f = &c->f[i];
	for (;;) {
		if (f->cap - f->len < 16384) {
			size_t cap = f->cap ? f->cap * 2 : 65536;
			char *b = realloc(f->buf, cap);
			cr_assert_not_null(b);
			f->buf = b;
			f->cap = cap;
		}
		ssize_t r = read(c->fd[i], f->buf + f->len, f->cap - f->len);
		if (r > 0) {
			f->len += (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			/* A reset counts as an end: held like a FIN. */
			f->eof = true;
			return r == 0;
		}
		return true;
	}
}

/* Deliver flow i to the other side. false: the connection failed. */
static bool push(struct conn *c, int i)
{
	struct flow *f = &c->f[i];
	int to = c->fd[1 - i];
	size_t off = 0;
	while (off < f->len) {
		ssize_t w = send(to, f->buf + off, f->len - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return false;
		}
		off += (size_t)w;
	}
	if (off) { /* else buf may be NULL: nothing was ever read */
		memmove(f->buf, f->buf + off, f->len - off);
		f->len -= off;
	}
	if (f->eof && f->len == 0 && !f->shut) {
		(void)shutdown(to, SHUT_WR);
		f->shut = true;
	}
	return true;
}

static void handle_cmd(tp_proxy *p, enum cmd cmd)
{
	if (cmd == CMD_CUT || cmd == CMD_FREEZE || cmd == CMD_HEAL) {
		p->cut = cmd == CMD_CUT;
		for (size_t k = 0; k < p->n; k++)
			p->conns[k].cut = cmd != CMD_HEAL;
	} else if (cmd == CMD_RESET || cmd == CMD_STOP)
		while (p->n)
			drop_conn(p, p->n - 1, true);
}

static void *loop(void *arg)
{
	tp_proxy *p = arg;
	struct pollfd fds[2 + 2 * MAX_CONNS];
	for (;;) {
		pthread_mutex_lock(&p->mu);
		enum cmd cmd = p->cmd;
		p->cmd = CMD_NONE;
		pthread_mutex_unlock(&p->mu);
		if (cmd != CMD_NONE) {
			handle_cmd(p, cmd);
			pthread_mutex_lock(&p->mu);
			p->done = p->asked;
			p->nconns = p->n;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			if (cmd == CMD_STOP)
				return NULL;
		}
		/* Forward (when not cut) before waiting again. */
		for (size_t k = 0; k < p->n;) {
			struct conn *c = &p->conns[k];
			bool ok = true;
			for (int i = 0; i < 2 && ok && !c->cut; i++)
				ok = push(c, i);
			bool closed = c->f[0].shut && c->f[1].shut;
			if (!ok || closed)
				drop_conn(p, k, !ok);
			else
				k++;
		}
		pthread_mutex_lock(&p->mu);
		p->nconns = p->n;
		pthread_mutex_unlock(&p->mu);
		size_t nf = 0;
		fds[nf++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
		for (size_t k = 0; k < p->n; k++)
			for (int i = 0; i < 2; i++) {
				struct conn *c = &p->conns[k];
				short ev = c->f[i].eof ? 0 : POLLIN;
				if (!c->cut && c->f[1 - i].len)
					ev |= POLLOUT;
				/* -1: poll would report HUP for ever. */
				fds[nf++] = (struct pollfd){
				    .fd = ev ? c->fd[i] : -1, .events = ev};
			}
		if (poll(fds, nf, 1000) < 0 && errno != EINTR)
			cr_assert_fail("tcp_proxy: poll: %s", strerror(errno));
		if (fds[0].revents) {
			char b[64];
			(void)!read(p->wake[0], b, sizeof(b));
		}
		/* Read everything offered, cut or not: a cut link ACKs. */
		size_t n = p->n;
		for (size_t k = n; k-- > 0;) {
			struct conn *c = &p->conns[k];
			bool ok = true;
			for (int i = 0; i < 2 && ok; i++)
				if (fds[2 + 2 * k + (size_t)i].revents &
				    (POLLIN | POLLHUP | POLLERR))
					ok = c->f[i].eof || pull(c, i);
			if (!ok && !c->cut)
				drop_conn(p, k, true);
			/* cut: a reset waits for the heal, as in a partition */
		}
		if (fds[1].revents & POLLIN)
			accept_one(p);
	}
}

static void ask(tp_proxy *p, enum cmd cmd)
{
	pthread_mutex_lock(&p->mu);
	p->cmd = cmd;
	unsigned long want = ++p->asked;
	pthread_mutex_unlock(&p->mu);
	(void)!write(p->wake[1], "x", 1);
	pthread_mutex_lock(&p->mu);
	while (p->done < want)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

tp_proxy *tp_start(const char *host, unsigned port)
{
	tp_proxy *p = calloc(1, sizeof(*p));
	cr_assert_not_null(p);
	p->target.sin_family = AF_INET;
	p->target.sin_port = htons((uint16_t)port);
	cr_assert_eq(inet_pton(AF_INET, host, &p->target.sin_addr), 1,
		     "tcp_proxy: target %s is not an IPv4 address", host);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(p->lfd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof(a);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(p->lfd, 64), 0);
	cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&a, &alen), 0);
	p->port = ntohs(a.sin_port);
	nonblock(p->lfd);
	cr_assert_eq(pipe2(p->wake, O_CLOEXEC | O_NONBLOCK), 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	cr_assert_eq(pthread_create(&p->thread, NULL, loop, p), 0);
	return p;
}

unsigned tp_port(const tp_proxy *p)
{
	return p->port;
}

void tp_cut(tp_proxy *p)
{
	ask(p, CMD_CUT);
}

void tp_freeze(tp_proxy *p)
{
	ask(p, CMD_FREEZE);
}

void tp_heal(tp_proxy *p)
{
	ask(p, CMD_HEAL);
}

void tp_reset(tp_proxy *p)
{
	ask(p, CMD_RESET);
}

size_t tp_connections(tp_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	size_t n = p->nconns;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void tp_stop(tp_proxy *p)
{
	if (!p)
		return;
	ask(p, CMD_STOP);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
