/* bench-c-floor: the floor of parley's benchmark (issue 10). A featureless single-thread epoll
 * WebSocket relay: GET /ws/<room> joins <room>, each text message goes to the other members.
 * Only what the benchmark needs: no fragmentation, no UTF-8 check, no limits beyond fixed
 * buffer sizes and a per-connection output cap, no TLS. Like a good relay it corks: frames for
 * a connection are appended to its output buffer during a loop iteration and each touched
 * connection is flushed with one send() at the end of the iteration (what parley does with
 * writev), so its CPU per delivery is a fair floor. Usage: bench-c-floor PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_IN (1 << 16)
#define MAX_OUT (16 << 20) /* like parley's send_queue: a reader this far behind is cut */
#define NBUCKETS 4096

struct room;
struct conn {
    int fd;
    int open;
    struct room* room;
    size_t slot; /* index in room->m */
    char* in;
    size_t in_len;
    char* out;
    size_t out_len, out_cap;
    int want_out;
    int dirty; /* on the dirty list: flushed at the end of this loop iteration */
    int dead;  /* dropped during this iteration: freed after the flush pass */
};
struct room {
    char name[72];
    struct conn** m;
    size_t n, cap;
    struct room* next;
};

static struct room* buckets[NBUCKETS];
static int ep;
static struct conn** dirty;
static size_t ndirty, dirty_cap;
static struct conn** graveyard;
static size_t ndead, dead_cap;

/* ---- SHA-1 and base64, for Sec-WebSocket-Accept ---- */
#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
static void sha1(const uint8_t* msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t buf[128];
    size_t total = ((len + 8) / 64 + 1) * 64;
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 64; i++) {
            size_t p = off + i;
            uint8_t b;
            if (p < len)
                b = msg[p];
            else if (p == len)
                b = 0x80;
            else if (p >= total - 8)
                b = (uint8_t)(((uint64_t)len * 8) >> (8 * (total - 1 - p)));
            else
                b = 0;
            buf[i] = b;
        }
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[4 * i] << 24 | (uint32_t)buf[4 * i + 1] << 16 |
                   (uint32_t)buf[4 * i + 2] << 8 | buf[4 * i + 3];
        for (int i = 16; i < 80; i++)
            w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20)
                f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40)
                f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60)
                f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else
                f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = ROL(a, 5) + f + e + k + w[i];
            e = d, d = c, c = ROL(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}
static void base64(const uint8_t* in, size_t n, char* out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- rooms ---- */
static unsigned hash(const char* s) {
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}
static void join(struct conn* c, const char* name) {
    unsigned b = hash(name);
    struct room* r = buckets[b];
    while (r && strcmp(r->name, name))
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", name);
        r->next = buckets[b];
        buckets[b] = r;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->m = realloc(r->m, r->cap * sizeof *r->m);
    }
    c->room = r;
    c->slot = r->n;
    r->m[r->n++] = c;
}
static void leave(struct conn* c) {
    struct room* r = c->room;
    if (!r) return;
    r->m[c->slot] = r->m[--r->n];
    r->m[c->slot]->slot = c->slot;
    c->room = NULL; /* empty rooms are kept: the benchmark reuses names */
}

/* ---- output ---- */
static void set_out(struct conn* c, int on) {
    if (c->want_out == on) return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}
static void push_ptr(struct conn*** v, size_t* n, size_t* cap, struct conn* c) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = c;
}
static void drop(struct conn* c);
/* Appends to the connection's output; the socket is written once per loop iteration. */
static void send_all(struct conn* c, const char* p, size_t n) {
    if (c->dead) return;
    if (c->out_len + n > MAX_OUT) return drop(c);
    if (c->out_len + n > c->out_cap) {
        while (c->out_len + n > c->out_cap)
            c->out_cap = c->out_cap ? c->out_cap * 2 : 4096;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    if (!c->dirty) {
        c->dirty = 1;
        push_ptr(&dirty, &ndirty, &dirty_cap, c);
    }
}
static void flush(struct conn* c) {
    if (c->dead) return;
    ssize_t w = c->out_len ? send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
    if (w < 0 && errno != EAGAIN) return drop(c);
    if (w > 0) {
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    set_out(c, c->out_len != 0);
}

/* Leaves the room at once (no more deliveries); the memory goes after the flush pass, since
 * the dirty list may still point at it. */
static void drop(struct conn* c) {
    if (c->dead) return;
    c->dead = 1;
    leave(c);
    close(c->fd);
    push_ptr(&graveyard, &ndead, &dead_cap, c);
}
static void bury(void) {
    for (size_t i = 0; i < ndead; i++) {
        free(graveyard[i]->in);
        free(graveyard[i]->out);
        free(graveyard[i]);
    }
    ndead = 0;
}

/* ---- protocol ---- */
static int handshake(struct conn* c) {
    c->in[c->in_len] = 0;
    char* end = strstr(c->in, "\r\n\r\n");
    if (!end) return c->in_len < MAX_IN - 1 ? 0 : -1;
    if (strncmp(c->in, "GET /ws/", 8)) return -1;
    char room[72];
    size_t i = 0;
    for (const char* p = c->in + 8; *p != ' ' && *p != '?' && *p && i < sizeof room - 1; p++)
        room[i++] = *p;
    room[i] = 0;
    char* k = strcasestr(c->in, "\r\nSec-WebSocket-Key:");
    if (!k || !i) return -1;
    k += 20;
    while (*k == ' ')
        k++;
    char key[128];
    size_t kl = 0;
    while (k[kl] && k[kl] != '\r' && kl < 60)
        key[kl] = k[kl], kl++;
    memcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t dg[20];
    sha1((uint8_t*)key, kl + 36, dg);
    char acc[32], resp[256];
    base64(dg, 20, acc);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    send_all(c, resp, (size_t)n);
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->open = 1;
    join(c, room);
    return 1;
}

/* Parses complete frames in c->in; -1 to close the connection. */
static int frames(struct conn* c) {
    size_t pos = 0;
    char hdr[10];
    while (c->in_len - pos >= 2) {
        uint8_t* p = (uint8_t*)c->in + pos;
        size_t avail = c->in_len - pos, h = 2;
        uint64_t len = p[1] & 0x7F;
        if (!(p[1] & 0x80)) return -1;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3], h = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            h = 10;
        }
        if (len > MAX_IN - 14) return -1;
        if (avail < h + 4 + len) break;
        uint8_t *mask = p + h, *pl = p + h + 4;
        for (uint64_t i = 0; i < len; i++)
            pl[i] ^= mask[i & 3];
        int op = p[0] & 0x0F;
        if (op == 1 || op == 2) {
            size_t hl = 2;
            hdr[0] = (char)(0x80 | op);
            if (len < 126)
                hdr[1] = (char)len;
            else
                hdr[1] = 126, hdr[2] = (char)(len >> 8), hdr[3] = (char)len, hl = 4;
            /* header and payload are contiguous in the input buffer: write both at once */
            char* f = (char*)pl - hl;
            memcpy(f, hdr, hl);
            struct room* r = c->room;
            for (size_t i = 0; r && i < r->n; i++)
                if (r->m[i] != c) send_all(r->m[i], f, hl + len);
        } else if (op == 8) {
            char cl[4] = {(char)0x88, 2, 0x03, (char)0xE8};
            send_all(c, cl, 4);
            return -1;
        } else if (op == 9) {
            char* f = (char*)pl - 2;
            f[0] = (char)0x8A, f[1] = (char)len;
            send_all(c, f, 2 + len);
        }
        pos += h + 4 + len;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

static void readable(struct conn* c) {
    if (c->dead) return;
    ssize_t r = recv(c->fd, c->in + c->in_len, MAX_IN - 1 - c->in_len, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN)) return drop(c);
    if (r < 0) return;
    c->in_len += (size_t)r;
    if (!c->open) {
        int h = handshake(c);
        if (h < 0) return drop(c);
        if (h == 0) return;
    }
    if (frames(c) < 0) {
        flush(c);
        drop(c);
    }
}

int main(int argc, char** argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr*)&a, sizeof a) || listen(ls, 4096)) {
        perror("bench-c-floor: listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    fprintf(stderr, "bench-c-floor listening on 127.0.0.1:%d\n", port);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            struct conn* c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 256; k++) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->in = malloc(MAX_IN);
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (c->dead) continue;
            if (evs[i].events & EPOLLOUT) flush(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
        }
        /* Cork: one send per touched connection per iteration. */
        for (size_t i = 0; i < ndirty; i++) {
            dirty[i]->dirty = 0;
            flush(dirty[i]);
        }
        ndirty = 0;
        bury();
    }
}
