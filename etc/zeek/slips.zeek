##! slips.zeek: the Zeek script slips loads into every zeek it runs, live (zeek -i)
##! and on captures (zeek -r), on top of Zeek's default base scripts.
##!
##! It adds arp.log, which Zeek does not write by itself but the slips arp module
##! needs (ARP scans, unsolicited replies, MITM): one record per ARP request or
##! reply, with the Ethernet addresses of the frame and the addresses the ARP
##! message itself carries. The field names are those the slips Zeek reader expects
##! (see slipsd/inputs/_zeek_norm.py, "arp"). JSON output is switched on from the
##! command line (LogAscii::use_json=T, see slipsd/sensors/zeek.py), not here, so
##! the same script also serves a Zeek whose logs someone wants as TSV.
##!
##! This script is exercised only where Zeek is installed: Debian 12, where the
##! test suite runs, does not package Zeek, and the tests use a stand-in program
##! (tests/zeek_standin/zeek) that does not read it. Check it with
##! `zeek -a etc/zeek/slips.zeek` (parse only) on a machine that has Zeek.

module Slips;

export {
	## The arp.log stream.
	redef enum Log::ID += { ARP_LOG };

	## One ARP message as logged in arp.log.
	type ArpInfo: record {
		## When the packet was seen (the packet's timestamp, also with -r).
		ts: time &log;
		## "request" or "reply".
		operation: string &log;
		## Ethernet source address of the frame.
		src_mac: string &log;
		## Ethernet destination address of the frame (ff:ff:ff:ff:ff:ff when broadcast).
		dst_mac: string &log;
		## Sender protocol address (SPA): who asks, or who answers.
		orig_h: addr &log;
		## Target protocol address (TPA): the address asked about, or answered to.
		resp_h: addr &log;
		## Sender hardware address (SHA) as the ARP message states it; differing
		## from src_mac is itself a sign of spoofing.
		orig_hw: string &log;
		## Target hardware address (THA); all zeros in most requests.
		resp_hw: string &log;
	};

	## Raised for each arp.log record, for other scripts that want to see them.
	global log_arp: event(rec: ArpInfo);
}

event zeek_init() &priority=5
	{
	Log::create_stream(Slips::ARP_LOG,
	                   Log::Stream($columns=ArpInfo, $ev=log_arp, $path="arp"));
	}

function log_message(operation: string, mac_src: string, mac_dst: string,
                     SPA: addr, SHA: string, TPA: addr, THA: string)
	{
	# network_time() is the time of the packet being processed: wall clock when
	# live, the capture's own time with -r, as in every other Zeek log.
	Log::write(Slips::ARP_LOG, ArpInfo($ts=network_time(), $operation=operation,
	                                   $src_mac=mac_src, $dst_mac=mac_dst,
	                                   $orig_h=SPA, $resp_h=TPA,
	                                   $orig_hw=SHA, $resp_hw=THA));
	}

# The parameters are named as in the events' declarations (Zeek_ARP.events.bif).
event arp_request(mac_src: string, mac_dst: string, SPA: addr, SHA: string,
                  TPA: addr, THA: string)
	{
	log_message("request", mac_src, mac_dst, SPA, SHA, TPA, THA);
	}

event arp_reply(mac_src: string, mac_dst: string, SPA: addr, SHA: string,
                TPA: addr, THA: string)
	{
	log_message("reply", mac_src, mac_dst, SPA, SHA, TPA, THA);
	}
