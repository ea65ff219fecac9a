// SPDX-License-Identifier: GPL-2.0
/*
 * The send-failure probe: UDP (and raw) sends that fail with EMSGSIZE
 * before an skb exists (a datagram larger than the route MTU with DF /
 * IP_PMTUDISC_DO, or larger than 65507) move no counter and free no skb,
 * so the drop probe never sees them. sendto/sendmsg's syscall tracepoints
 * see them: the entry stashes the fd, the length and the destination per
 * thread; the exit reports the ones that returned -EMSGSIZE, with the
 * sender's netns. Only while `explain` runs; one map update per send.
 */
#include "../include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define NW_EMSGSIZE 90

/* syscalls:sys_enter_* / sys_exit_* as tracefs describes them. */
struct nw_sys_enter {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct nw_sys_exit {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

struct nw_pending {
	__u64 len;
	__u64 addr; /* user pointer to the destination sockaddr, or 0 */
	__u32 fd;
	__u32 addrlen;
};

/* What user space reads: keep in step with src/probe/sendfail/mod.rs.
 * One entry per (netns, process, fd): user space reads the map while the
 * capture runs, so a sender that fails a million times costs one entry. */
struct nw_sendfail_key {
	__u32 netns;
	__u32 tgid;
	__u32 fd;
};

struct nw_sendfail {
	__u64 len; /* of the last failed send */
	__u64 count;
	__u32 pid;
	__u32 pad;
	__u16 family;
	__u16 port; /* network order */
	__u8 addr[16];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct nw_pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct nw_sendfail_key);
	__type(value, struct nw_sendfail);
} fails SEC(".maps");

/* struct user_msghdr and struct iovec, 64-bit layout. */
struct nw_msghdr {
	__u64 name;
	__s32 namelen;
	__u32 pad;
	__u64 iov;
	__u64 iovlen;
};

struct nw_iovec {
	__u64 base;
	__u64 len;
};

static __always_inline void stash(__u32 fd, __u64 len, __u64 addr, __u32 addrlen)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct nw_pending p = { .len = len, .addr = addr, .fd = fd, .addrlen = addrlen };

	bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int nw_enter_sendto(struct nw_sys_enter *ctx)
{
	stash((__u32)ctx->args[0], ctx->args[2], ctx->args[4], (__u32)ctx->args[5]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int nw_enter_sendmsg(struct nw_sys_enter *ctx)
{
	struct nw_msghdr m = {};
	struct nw_iovec v = {};
	__u64 len = 0;
	int i;

	if (bpf_probe_read_user(&m, sizeof(m), (void *)ctx->args[1]))
		return 0;
	for (i = 0; i < 8; i++) {
		if ((__u64)i >= m.iovlen)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(m.iov + i * sizeof(v))))
			break;
		len += v.len;
	}
	stash((__u32)ctx->args[0], len, m.name, (__u32)m.namelen);
	return 0;
}

static __always_inline int on_exit(struct nw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct nw_pending *p = bpf_map_lookup_elem(&pending, &tid);
	struct nw_sendfail_key k = {};
	struct nw_sendfail v = {}, *old;
	struct task_struct *task;
	__u8 sa[24] = {};

	if (!p)
		return 0;
	if (ctx->ret != -NW_EMSGSIZE) {
		bpf_map_delete_elem(&pending, &tid);
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	k.netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	k.tgid = id >> 32;
	k.fd = p->fd;
	old = bpf_map_lookup_elem(&fails, &k);
	if (old) {
		__sync_fetch_and_add(&old->count, 1);
		old->len = p->len;
		bpf_map_delete_elem(&pending, &tid);
		return 0;
	}
	v.len = p->len;
	v.count = 1;
	v.pid = tid;
	bpf_get_current_comm(v.comm, sizeof(v.comm));
	/* sockaddr_in is 16 bytes, sockaddr_in6 28: read what the family has. */
	if (p->addr && p->addrlen >= 8 && !bpf_probe_read_user(sa, 8, (void *)p->addr)) {
		v.family = *(__u16 *)&sa[0];
		v.port = *(__u16 *)&sa[2];
		if (v.family == 2)
			__builtin_memcpy(v.addr, &sa[4], 4);
		else if (v.family == 10 && p->addrlen >= 24 &&
			 !bpf_probe_read_user(sa, 24, (void *)p->addr))
			__builtin_memcpy(v.addr, &sa[8], 16);
	}
	bpf_map_delete_elem(&pending, &tid);
	bpf_map_update_elem(&fails, &k, &v, BPF_NOEXIST);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int nw_exit_sendto(struct nw_sys_exit *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int nw_exit_sendmsg(struct nw_sys_exit *ctx)
{
	return on_exit(ctx);
}
