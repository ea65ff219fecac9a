// SPDX-License-Identifier: GPL-2.0
/*
 * The program the `tc-bpf-drop` lab scenario plants on a veth's clsact
 * ingress: it returns TC_ACT_SHOT for UDP (IPv4 or IPv6) to one port, like
 * a Cilium/Calico policy program that denies a service. The kernel reports
 * such drops as TC_INGRESS and nothing more; netwhy must name this program.
 *
 * Headers are read with bpf_skb_load_bytes, so no __sk_buff layout is
 * needed here, and the program stays tiny for the verifier.
 */
#include "../../probe/include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_HLEN 14
#define IPPROTO_UDP 17

/* The denied UDP port, set before load. */
const volatile __u16 cfg_port = 5300;

struct __sk_buff;

/* 15 characters: the kernel keeps at most that much of a program's name. */
SEC("tc")
int nwlab_udp_deny(struct __sk_buff *skb)
{
	__u8 h[40];
	__u16 dport;
	__u32 l4;

	if (bpf_skb_load_bytes(skb, 12, h, 2))
		return TC_ACT_OK;
	if (h[0] == 0x08 && h[1] == 0x00) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 20) || h[9] != IPPROTO_UDP)
			return TC_ACT_OK;
		l4 = ETH_HLEN + (h[0] & 0x0f) * 4;
	} else if (h[0] == 0x86 && h[1] == 0xdd) {
		/* No extension headers: UDP right after the fixed header. */
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 40) || h[6] != IPPROTO_UDP)
			return TC_ACT_OK;
		l4 = ETH_HLEN + 40;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_load_bytes(skb, l4 + 2, &dport, 2))
		return TC_ACT_OK;
	return bpf_ntohs(dport) == cfg_port ? TC_ACT_SHOT : TC_ACT_OK;
}
