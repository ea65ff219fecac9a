/* SPDX-License-Identifier: GPL-2.0 */
/*
 * skb field access shared by the probes (drop, path): one place that knows
 * how to read a field in both tp_btf and classic tracepoint programs, how to
 * name the device and which network namespace an skb is in.
 */
#ifndef NETWHY_SKB_H
#define NETWHY_SKB_H

/* Read a field: a direct BTF-typed load in tp_btf programs (no helper call,
 * the verifier guards it), bpf_probe_read_kernel in the classic tracepoint
 * whose skb pointer is an untyped scalar. `btf` is a literal at every call
 * site, so clang keeps only one branch after inlining. */
#define RD(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline void read_ifname(struct net_device *dev, char *name)
{
	__builtin_memset(name, 0, NW_IFNAMSIZ);
	if (dev)
		bpf_probe_read_kernel_str(name, NW_IFNAMSIZ, dev->name);
}

static __always_inline __u32 skb_netns(struct sk_buff *skb, struct net_device *dev, bool btf)
{
	struct net *net = 0;
	if (dev)
		net = RD(btf, dev, nd_net.net);
	if (!net) {
		/* Local-out drops (e.g. nft output chain) have no skb->dev yet. */
		struct sock *sk = RD(btf, skb, sk);
		if (sk)
			net = RD(btf, sk, __sk_common.skc_net.net);
	}
	if (!net)
		return 0;
	return RD(btf, net, ns.inum);
}

/* Loaded as RD does: direct BTF loads in tp_btf programs. */
#define NET_INUM(btf, net) ((net) ? RD(btf, net, ns.inum) : 0)

/* A kernel pointer, not the scratch value UDP packs into the same word
 * (skb->dev_scratch) once a datagram is queued on a socket: kernel
 * addresses have a top byte of 0xff (0xffff... with 4-level paging,
 * 0xff11... with 5-level: the 6.12 guest), the scratch word's top byte is
 * a bool. */
#define NW_KPTR(p) (((unsigned long)(p) >> 56) == 0xff)

/* The namespace a drop belongs to, for the drop probe: every source the
 * kernel offers, most specific first, and which one answered in *src.
 * - rx_sk (6.11+): the socket the kernel was delivering to. Socket-layer
 *   drops (a SYN+FIN refused by a listener, a stray ACK, a SYN-cookie ACK
 *   on a full accept queue) free an skb that has no device any more.
 * - A packet that came in from a device (skb_iif set) is in that device's
 *   namespace. Its skb->sk may still be the *sender's* socket in another
 *   namespace: veth keeps the reference across namespaces (measured here:
 *   an AF_PACKET frame from one netns dropped in the peer's ip_rcv_core).
 * - Otherwise the skb's own socket (local output before a device is set:
 *   an nft output chain), then its device, its route's device, and last
 *   the current task's namespace (right for a drop inside a syscall). */
static __always_inline __u32 drop_netns(struct sk_buff *skb, struct net_device *dev,
					struct sock *rx_sk, bool btf, __u8 *src)
{
	struct net *net;
	__u32 ns;

	if (rx_sk) {
		net = RD(btf, rx_sk, __sk_common.skc_net.net);
		ns = NET_INUM(btf, net);
		if (ns) {
			*src = NW_NS_RX_SK;
			return ns;
		}
	}
	bool have_dev = dev && NW_KPTR(dev);
	if (have_dev && RD(btf, skb, skb_iif)) {
		net = RD(btf, dev, nd_net.net);
		ns = NET_INUM(btf, net);
		if (ns) {
			*src = NW_NS_DEV;
			return ns;
		}
	}
	struct sock *sk = RD(btf, skb, sk);
	if (sk) {
		net = RD(btf, sk, __sk_common.skc_net.net);
		ns = NET_INUM(btf, net);
		if (ns) {
			*src = NW_NS_SKB_SK;
			return ns;
		}
	}
	if (have_dev) {
		net = RD(btf, dev, nd_net.net);
		ns = NET_INUM(btf, net);
		if (ns) {
			*src = NW_NS_DEV;
			return ns;
		}
	}
	unsigned long refdst = RD(btf, skb, _skb_refdst) & ~1UL;
	if (refdst) {
		struct net_device *ddev = BPF_CORE_READ((struct dst_entry *)refdst, dev);
		net = ddev ? BPF_CORE_READ(ddev, nd_net.net) : 0;
		ns = NET_INUM(false, net);
		if (ns) {
			*src = NW_NS_DST_DEV;
			return ns;
		}
	}
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	net = BPF_CORE_READ(task, nsproxy, net_ns);
	ns = NET_INUM(false, net);
	*src = ns ? NW_NS_TASK : NW_NS_NONE;
	return ns;
}

#endif
