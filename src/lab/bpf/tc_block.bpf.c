// SPDX-License-Identifier: GPL-2.0
/*
 * The programs the lab plants on a veth to deny UDP (IPv4 or IPv6) to one
 * port, like a Cilium/Calico policy program that denies a service: one for
 * tc (clsact or tcx) returning TC_ACT_SHOT, one for XDP returning XDP_DROP.
 * The kernel reports such drops as TC_INGRESS or less; netwhy must name the
 * program.
 *
 * Headers are read with the load_bytes helpers, so no context layout is
 * needed here, and the programs stay tiny for the verifier.
 */
#include "../../probe/include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* "No verdict, run the next program": for tcx (TCX_NEXT) as for cls_bpf.
 * TC_ACT_OK on tcx would accept the packet and skip every later program. */
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define ETH_HLEN 14
#define IPPROTO_UDP 17

/* The denied UDP port, set before load. */
const volatile __u16 cfg_port = 5300;

#define XDP_DROP 1
#define XDP_PASS 2

struct __sk_buff;
struct xdp_md;

/* Does the frame whose bytes `load` reads carry UDP to cfg_port? */
#define DENIED(load, ctx)                                                   \
	({                                                                  \
		__u8 h[40];                                                 \
		__u16 dport = 0;                                            \
		__u32 l4 = 0;                                               \
		if (load(ctx, 12, h, 2) == 0) {                             \
			if (h[0] == 0x08 && h[1] == 0x00 &&                 \
			    load(ctx, ETH_HLEN, h, 20) == 0 &&              \
			    h[9] == IPPROTO_UDP)                            \
				l4 = ETH_HLEN + (h[0] & 0x0f) * 4;          \
			else if (h[0] == 0x86 && h[1] == 0xdd &&            \
				 load(ctx, ETH_HLEN, h, 40) == 0 &&         \
				 h[6] == IPPROTO_UDP)                       \
				l4 = ETH_HLEN + 40;                         \
		}                                                           \
		l4 && load(ctx, l4 + 2, &dport, 2) == 0 &&                  \
			bpf_ntohs(dport) == cfg_port;                       \
	})

/* 15 characters: the kernel keeps at most that much of a program's name.
 * IPv6 extension headers are not walked: UDP right after the fixed header. */
SEC("tc")
int nwlab_udp_deny(struct __sk_buff *skb)
{
	return DENIED(bpf_skb_load_bytes, skb) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

SEC("xdp")
int nwlab_xdp_deny(struct xdp_md *ctx)
{
	return DENIED(bpf_xdp_load_bytes, ctx) ? XDP_DROP : XDP_PASS;
}
