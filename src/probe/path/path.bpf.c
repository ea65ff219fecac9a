// SPDX-License-Identifier: GPL-2.0
/*
 * netwhy path probe: follows the packets a filter selects through the
 * kernel's skb tracepoints (tp_btf), so it needs no kprobes and no fentry.
 *
 * At every hook, the skb address is looked up in `tracked` first (one hash
 * lookup: the cheap common case). An untracked skb is matched against the
 * field filters and the tcpdump filter (cbpf.h); a match gets a packet id
 * and is tracked from then on, whatever its headers become (NAT), and
 * across veth pairs, which hand the same skb to the peer's namespace.
 * kfree_skb / consume_skb end the tracking and report the fate.
 */
#include "../include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../include/event.h"
#include "../include/skb.h"
#include "../include/cbpf.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- configuration, frozen before load ---- */
const volatile __u32 cfg_consumed = 1;       /* SKB_CONSUMED from BTF; ~0: none (6.1) */
/* consume_skb passes its caller's location (6.3+); 6.1's has only the skb. */
const volatile bool cfg_consume_location = true;
const volatile bool cfg_netns_filter = false;
const volatile bool cfg_ifindex_filter = false;
const volatile __u32 cfg_ifindex = 0;
const volatile bool cfg_ifname_filter = false;
const volatile char cfg_ifname[NW_IFNAMSIZ] = {};
const volatile bool cfg_mark_filter = false;
const volatile __u32 cfg_mark = 0;
const volatile __u32 cfg_mark_mask = 0xffffffff;
/* A tracked entry older than this belongs to a packet whose end no
 * tracepoint reported (e.g. freed by __kfree_skb): its address may now be
 * another packet's. */
const volatile __u64 cfg_track_ns = 2000000000ULL;
const volatile __u64 cfg_wakeup_bytes = 65536;

/* ---- maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct nw_track);
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_PCNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Packet ids: one counter (atomic add), shared with the skb function
 * probe, which gives copies of tracked packets their own ids. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} next_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} netns_set SEC(".maps");


struct nw_path_event _nw_path_event = {};
struct nw_cbpf_insn _nw_cbpf_insn = {};
struct nw_cbpf_prog _nw_cbpf_prog = {};
struct nw_track _nw_track = {};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

/* Where the packet's network header is, and how much of it there is.
 * Receive hooks before the IP layer may have no network header yet: then
 * the byte after the Ethernet header (skb->data after eth_type_trans). */
static __always_inline unsigned char *l3_start(struct sk_buff *skb, __u32 *caplen, __u32 *wirelen)
{
	unsigned char *head = skb->head;
	__u16 mac = skb->mac_header, nh = skb->network_header;
	__u32 data_off = (__u32)(skb->data - head);
	__u32 tail = skb->tail, len = skb->len;
	__u32 off;

	if (nh != 0xffff && (mac == 0xffff || nh >= mac + 14))
		off = nh;
	else if (mac != 0xffff)
		off = mac + 14;
	else
		return 0;
	if (off > len + data_off || off > tail)
		return 0;
	*wirelen = len + data_off - off;
	*caplen = tail - off;
	return head + off;
}

/* A tunnel (vxlan, ipip, gre...) put an outer header on the packet: its
 * inner IPv4 header still carries the tracked id. */
static __always_inline bool inner_is(struct sk_buff *skb, __u32 ipid)
{
	__u16 inner = skb->inner_network_header;
	__u8 h[8];

	if (!inner || inner == 0xffff)
		return false;
	if (bpf_probe_read_kernel(h, sizeof(h), skb->head + inner) != 0)
		return false;
	return (h[0] >> 4) == 4 && (((__u32)h[4] << 8) | h[5]) == ipid;
}

/* IPv4 id of the header at p (0xffffffff when not IPv4). */
static __always_inline __u32 ipv4_id(const __u8 *h, __u32 n)
{
	if (n < 20 || (h[0] >> 4) != 4)
		return 0xffffffff;
	return ((__u32)h[4] << 8) | h[5];
}

static __always_inline bool field_filters(struct sk_buff *skb, struct net_device *dev, __u32 netns)
{
	if (cfg_netns_filter && !bpf_map_lookup_elem(&netns_set, &netns))
		return false;
	if (cfg_ifindex_filter && (!dev || dev->ifindex != cfg_ifindex))
		return false;
	if (cfg_ifname_filter) {
		char name[NW_IFNAMSIZ];
		read_ifname(dev, name);
#pragma unroll
		for (int i = 0; i < NW_IFNAMSIZ; i++) {
			if (name[i] != cfg_ifname[i])
				return false;
			if (!cfg_ifname[i])
				break;
		}
	}
	if (cfg_mark_filter && (skb->mark & cfg_mark_mask) != cfg_mark)
		return false;
	return true;
}

/* Copies up to NW_PKT_MAX bytes from the network header into the per-CPU
 * scratch; returns how many are valid (0 on failure). A fixed-size read:
 * the head buffer ends with skb_shared_info, so reading past tail stays
 * inside it; caplen says what is valid. */
static __always_inline __u32 copy_packet(struct nw_cbpf_state *p, unsigned char *l3, __u32 caplen)
{
	if (bpf_probe_read_kernel(p->b, NW_PKT_MAX, l3) != 0) {
		if (bpf_probe_read_kernel(p->b, 64, l3) != 0)
			return 0;
		if (caplen > 64)
			caplen = 64;
	}
	return caplen > NW_PKT_MAX ? NW_PKT_MAX : caplen;
}

#include "../include/endpoint.h"

/* The filters that decide whether an untracked packet starts a timeline. */
static __always_inline bool packet_matches(struct sk_buff *skb, unsigned char *l3, __u32 caplen,
					   __u32 wirelen, __u32 netns, __u16 hook)
{
	__u32 zero = 0;
	struct nw_cbpf_state *p;

	if (!cfg_cbpf_len && !cfg_cgroup)
		return true;
	p = bpf_map_lookup_elem(&cbpf_pkt, &zero);
	if (!p)
		return false;
	caplen = copy_packet(p, l3, caplen);
	if (!caplen)
		return false;
	if (cfg_cgroup && !cgroup_matches(skb, p, caplen, netns, hook))
		return false;
	return cbpf_match(p, caplen, wirelen);
}

/* Hooks where a packet's timeline may begin: where packets enter the
 * stack (receive) or a device queue (transmit, incl. forwarding after NAT),
 * and drops. The others see only packets already seen at one of these, so
 * evaluating the filter there again would only cost time (and a consume or
 * a finished transmit seen first ends something we never saw begin). */
/* A kfree_skb reason that means dropped. Kernels without SKB_CONSUMED
 * (6.1) free consumed packets through consume_skb only, so every kfree_skb
 * there is a drop (its reasons start at NOT_SPECIFIED, 1). */
static __always_inline bool is_drop(__u32 reason)
{
	if (cfg_consumed == (__u32)~0)
		return reason != 0;
	return reason > cfg_consumed;
}

static __always_inline bool may_start(__u16 hook, __u32 reason)
{
	return hook == NW_HOOK_NAPI_GRO_RECEIVE || hook == NW_HOOK_NETIF_RECEIVE_SKB ||
	       hook == NW_HOOK_NET_DEV_QUEUE ||
	       (hook == NW_HOOK_KFREE_SKB && is_drop(reason));
}

static __always_inline int step(struct sk_buff *skb, __u16 hook, __u64 location, __u32 reason,
				__u32 aux, struct net_device *xdev, struct sock *xsk, __u64 sock_ino)
{
	__u64 key = (__u64)skb, id, clone_of = 0, now = bpf_ktime_get_ns();
	struct nw_track *t;
	struct net_device *dev;
	unsigned char *l3 = 0;
	__u32 caplen = 0, wirelen = 0, netns;
	__u8 flags = 0;
	/* Queued on a socket is an end too: UDP frees read datagrams without
	 * any tracepoint, so nothing later would close the timeline. */
	bool fate = hook == NW_HOOK_KFREE_SKB || hook == NW_HOOK_CONSUME_SKB ||
		    hook == NW_HOOK_SK_DATA_READY;
	/* net_dev_xmit runs after the driver took the skb (veth may have
	 * handed it on): use its own arguments, never the skb's contents. */
	bool gone = hook == NW_HOOK_NET_DEV_XMIT;

	if (!skb)
		return 0;
	/* The common case first: an skb nobody tracks, at a hook where no
	 * packet can start, costs one hash lookup. */
	t = bpf_map_lookup_elem(&tracked, &key);
	if (!t && !may_start(hook, reason))
		return 0;
	dev = gone ? xdev : skb->dev;
	if (!gone)
		l3 = l3_start(skb, &caplen, &wirelen);

	if (t && now - t->start_ns > cfg_track_ns) {
		bpf_map_delete_elem(&tracked, &key);
		count(NW_PCNT_STALE);
		t = 0;
	}
	if (t && l3 && t->ipid != 0xffffffff) {
		/* A freed-and-reused address: same slot, now another IPv4
		 * packet or no IPv4 packet at all (NAT keeps the id). */
		__u8 h[8];
		if (bpf_probe_read_kernel(h, sizeof(h), l3) == 0 &&
		    ((h[0] >> 4) != 4 || (((__u32)h[4] << 8) | h[5]) != t->ipid) &&
		    !inner_is(skb, t->ipid)) {
			bpf_map_delete_elem(&tracked, &key);
			count(NW_PCNT_STALE);
			t = 0;
		}
	}

	netns = skb_netns(skb, dev, true);
	if (!netns && xsk)
		netns = xsk->__sk_common.skc_net.net->ns.inum;
	if (t) {
		id = t->packet;
		clone_of = t->clone_of;
	} else {
		if (!may_start(hook, reason) || !l3)
			return 0;
		if (!field_filters(skb, dev, netns) ||
		    !packet_matches(skb, l3, caplen, wirelen, netns, hook))
			return 0;
		__u32 zero = 0;
		__u64 *next = bpf_map_lookup_elem(&next_id, &zero);
		if (!next)
			return 0;
		id = __sync_fetch_and_add(next, 1) + 1;
		flags |= NW_STEP_FIRST;
		count(NW_PCNT_MATCHED);
		if (!fate) {
			struct nw_track nt = { .packet = id, .start_ns = now, .ipid = 0xffffffff };
			__u8 h[8];
			if (bpf_probe_read_kernel(h, sizeof(h), l3) == 0)
				nt.ipid = ipv4_id(h, caplen < 20 ? 0 : 20);
			if (bpf_map_update_elem(&tracked, &key, &nt, BPF_ANY) != 0)
				count(NW_PCNT_TRACK_FULL);
		}
	}
	if (fate) {
		flags |= NW_STEP_FATE;
		bpf_map_delete_elem(&tracked, &key);
	}

	struct nw_path_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(NW_PCNT_LOST);
		return 0;
	}
	e->time_ns = now;
	e->skbaddr = key;
	e->packet = id;
	e->location = location;
	e->sock_ino = sock_ino;
	e->clone_of = clone_of;
	e->clone = 0;
	e->reason = reason;
	e->netns = netns;
	e->ifindex = dev ? dev->ifindex : 0;
	e->mark = gone ? 0 : skb->mark;
	e->len = gone ? aux : skb->len;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->aux = aux;
	e->hook = hook;
	e->protocol = gone ? 0 : bpf_ntohs(skb->protocol);
	e->hdr_len = 0;
	e->flags = flags;
	e->_pad0 = 0;
	e->_pad1 = 0;
	read_ifname(dev, e->ifname);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (l3) {
		__u32 n = caplen < NW_HDR_MAX ? caplen : NW_HDR_MAX;
		if (bpf_probe_read_kernel(e->hdr, NW_HDR_MAX, l3) == 0)
			e->hdr_len = n;
		else if (bpf_probe_read_kernel(e->hdr, 64, l3) == 0)
			e->hdr_len = n < 64 ? n : 64;
	}
	count(NW_PCNT_STEPS);
	__u64 wake = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
			     ? BPF_RB_FORCE_WAKEUP
			     : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, wake);
	return 0;
}

/* One tp_btf program per tracepoint whose skb is argument IDX (0-based,
 * after the tracepoint's hidden first argument). User space checks IDX
 * against the kernel's BTF before enabling the program. */
#define PATH_HOOK(tp, idx, hook)                                              \
	SEC("tp_btf/" #tp)                                                    \
	int nw_path_##tp(unsigned long long *ctx)                             \
	{                                                                     \
		return step((struct sk_buff *)ctx[idx], hook, 0, 0, 0, 0, 0, 0); \
	}

PATH_HOOK(napi_gro_receive_entry, 0, NW_HOOK_NAPI_GRO_RECEIVE)
PATH_HOOK(netif_rx, 0, NW_HOOK_NETIF_RX)
PATH_HOOK(netif_receive_skb, 0, NW_HOOK_NETIF_RECEIVE_SKB)
PATH_HOOK(net_dev_queue, 0, NW_HOOK_NET_DEV_QUEUE)
PATH_HOOK(qdisc_enqueue, 2, NW_HOOK_QDISC_ENQUEUE)
PATH_HOOK(qdisc_dequeue, 3, NW_HOOK_QDISC_DEQUEUE)
PATH_HOOK(net_dev_start_xmit, 0, NW_HOOK_NET_DEV_START_XMIT)
/* Socket-layer tracepoints also pass the sock (argument SK): it names the
 * socket (protocol, local port, inode) and the netns when skb->dev is gone. */
static __always_inline void sock_info(struct sock *sk, __u32 *aux, __u64 *ino)
{
	struct socket *so;

	*aux = 0;
	*ino = 0;
	if (!sk)
		return;
	*aux = ((__u32)sk->sk_protocol << 16) | sk->__sk_common.skc_num;
	so = sk->sk_socket;
	if (so && so->file && so->file->f_inode)
		*ino = so->file->f_inode->i_ino;
}

#define PATH_HOOK_SK(tp, idx, skidx, hook)                                    \
	SEC("tp_btf/" #tp)                                                    \
	int nw_path_##tp(unsigned long long *ctx)                             \
	{                                                                     \
		struct sock *sk = (struct sock *)ctx[skidx];                  \
		__u32 aux;                                                    \
		__u64 ino;                                                    \
		sock_info(sk, &aux, &ino);                                    \
		return step((struct sk_buff *)ctx[idx], hook, 0, 0, aux, 0, sk, ino); \
	}

PATH_HOOK_SK(sock_rcvqueue_full, 1, 0, NW_HOOK_SOCK_RCVQUEUE_FULL)
PATH_HOOK_SK(udp_fail_queue_rcv_skb, 2, 1, NW_HOOK_UDP_FAIL_QUEUE_RCV_SKB)
PATH_HOOK_SK(tcp_probe, 1, 0, NW_HOOK_TCP_PROBE)
PATH_HOOK_SK(tcp_retransmit_skb, 1, 0, NW_HOOK_TCP_RETRANSMIT_SKB)
PATH_HOOK_SK(tcp_send_reset, 1, 0, NW_HOOK_TCP_SEND_RESET)
PATH_HOOK(tcp_bad_csum, 0, NW_HOOK_TCP_BAD_CSUM)

/* net_dev_xmit(skb, rc, dev, len): the driver has the skb now. */
SEC("tp_btf/net_dev_xmit")
int nw_path_net_dev_xmit(unsigned long long *ctx)
{
	return step((struct sk_buff *)ctx[0], NW_HOOK_NET_DEV_XMIT, 0, 0, (__u32)ctx[3],
		    (struct net_device *)ctx[2], 0, 0);
}

/* icmp_send(skb, type, code): the kernel answers this packet with an
 * ICMP error (port unreachable, time exceeded...). */
SEC("tp_btf/icmp_send")
int nw_path_icmp_send(unsigned long long *ctx)
{
	__u32 aux = ((__u32)ctx[1] & 0xff) << 8 | ((__u32)ctx[2] & 0xff);
	return step((struct sk_buff *)ctx[0], NW_HOOK_ICMP_SEND, 0, 0, aux, 0, 0, 0);
}

/* skb_copy_datagram_iovec(skb, len): a process reads the packet's data
 * from its socket; the current task is the reader. */
SEC("tp_btf/skb_copy_datagram_iovec")
int nw_path_skb_copy_datagram_iovec(unsigned long long *ctx)
{
	return step((struct sk_buff *)ctx[0], NW_HOOK_SKB_COPY_DATAGRAM_IOVEC, 0, 0,
		    (__u32)ctx[1], 0, 0, 0);
}

/* kfree_skb(skb, location, reason, ...): declare only the first three. */
SEC("tp_btf/kfree_skb")
int nw_path_kfree_skb(unsigned long long *ctx)
{
	return step((struct sk_buff *)ctx[0], NW_HOOK_KFREE_SKB, ctx[1], (__u32)ctx[2], 0, 0, 0, 0);
}

/* consume_skb(skb, location): freed after use, not dropped. */
SEC("tp_btf/consume_skb")
int nw_path_consume_skb(unsigned long long *ctx)
{
	/* Dead code on 6.1 (frozen rodata), where reading ctx[1] fails to load. */
	__u64 location = cfg_consume_location ? ctx[1] : 0;

	return step((struct sk_buff *)ctx[0], NW_HOOK_CONSUME_SKB, location, 0, 0, 0, 0, 0);
}

/* sk_data_ready(sk): a socket was told data arrived. The tracepoint has no
 * skb, but UDP and TCP append the skb to sk_receive_queue just before, so
 * the queue's tail is the packet (an exact check: step() finds it tracked
 * or, this hook being no start, ignores it). The pointer is never passed
 * by address (as a map key): 6.12's verifier then forgets its BTF type and
 * step()'s direct reads through it fail to load ("invalid mem access"). */
SEC("tp_btf/sk_data_ready")
int nw_path_sk_data_ready(unsigned long long *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct sk_buff *skb = sk->sk_receive_queue.prev;
	__u32 aux;
	__u64 ino;

	if (!skb || (void *)skb == (void *)&sk->sk_receive_queue)
		return 0;
	sock_info(sk, &aux, &ino);
	return step(skb, NW_HOOK_SK_DATA_READY, 0, 0, aux, 0, sk, ino);
}
