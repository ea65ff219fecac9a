/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types netwhy's BPF programs read, declared with
 * preserve_access_index so libbpf relocates every field against the running
 * kernel's BTF (CO-RE). Only the fields used are listed; layouts here are NOT
 * the kernel's and must never be relied on for offsets or sizes.
 * Committed instead of a bpftool-generated vmlinux.h so the build does not
 * depend on the build host's kernel.
 */
#ifndef NETWHY_VMLINUX_MIN_H
#define NETWHY_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
};

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
	unsigned short skc_num; /* local port, host order */
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
} __attribute__((preserve_access_index));

struct sk_buff;

struct sk_buff_head {
	struct sk_buff *next;
	struct sk_buff *prev;
} __attribute__((preserve_access_index));

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct sock_cgroup_data {
	struct cgroup *cgroup; /* the cgroup v2 the socket was created in */
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
	struct sk_buff_head sk_receive_queue;
	struct socket *sk_socket;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct dst_entry {
	struct net_device *dev;
} __attribute__((preserve_access_index));

struct nsproxy {
	struct net *net_ns;
} __attribute__((preserve_access_index));

struct task_struct {
	struct nsproxy *nsproxy;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned long _skb_refdst; /* struct dst_entry *, low bit: no refcount */
	int skb_iif; /* ifindex the packet arrived on; 0: built locally */
	unsigned int len;
	__u32 mark;
	__be16 vlan_proto;
	__u16 vlan_tci;
	__be16 protocol;
	__u16 inner_network_header; /* set by tunnels when they encapsulate */
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned char *head;
	unsigned char *data;
	unsigned int tail; /* an offset from head on 64-bit kernels */
} __attribute__((preserve_access_index));

/* Classic tracepoint record of skb:kfree_skb (fallback without tp_btf). */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

/* Declared as an enum (values irrelevant) so CO-RE matches the kernel's
 * `enum skb_drop_reason reason` field: an int would not relocate. */
enum skb_drop_reason {
	SKB_DROP_REASON_NOT_SPECIFIED___local = 0,
};

struct trace_event_raw_kfree_skb {
	struct trace_entry ent;
	void *skbaddr;
	void *location;
	void *rx_sk; /* 6.11+ */
	unsigned short protocol;
	enum skb_drop_reason reason;
} __attribute__((preserve_access_index));

#endif
