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

#endif
