"""Extension modules: typed fields, exact iptables-save form, parse(save(x)) == x.

``SAVE_FORMS`` pairs an input rule with what the real ``iptables-save`` (1.8.9, nf_tables) printed
after loading it into a private namespace; ``test_save_forms_still_match_real_iptables``
re-checks every pair against the real iptables whenever it can run, so the table cannot drift
from what iptables does.
"""

from __future__ import annotations

import pytest

import iptables_ns
from corpus_index import IN_CI
from iptexplain.core.errors import OptionError
from iptexplain.ext import MATCHES, TARGETS, load_all, match_class, target_class
from iptexplain.graph import Rule
from iptexplain.parse.rulespec import IPTABLES_MATCHES, IPTABLES_TARGETS, parse_rulespec
from iptexplain.parse.tokenize import split_args

# (family, table, input rule, what iptables-save printed)
SAVE_FORMS = [
    (4, 'filter', '-m mac --mac-source AA:BB:cc:dd:ee:0f -j ACCEPT',
     '-m mac --mac-source aa:bb:cc:dd:ee:0f -j ACCEPT'),
    (4, 'filter', '-m mac ! --mac-source aa:bb:cc:dd:ee:ff',
     '-m mac ! --mac-source aa:bb:cc:dd:ee:ff'),
    (4, 'filter', '-m limit --limit 3/hour',
     '-m limit --limit 3/hour'),
    (4, 'filter', '-m limit --limit 60/min --limit-burst 10 -j ACCEPT',
     '-m limit --limit 1/sec --limit-burst 10 -j ACCEPT'),
    (4, 'filter', '-m limit --limit 7/s --limit-burst 5',
     '-m limit --limit 7/sec'),
    (4, 'filter', '-m limit --limit 1000/second',
     '-m limit --limit 1000/sec'),
    (4, 'filter', '-m limit --limit 2/d',
     '-m limit --limit 2/day'),
    (4, 'filter', '-m recent --set --name SSH --rsource',
     '-m recent --set --name SSH --mask 255.255.255.255 --rsource'),
    (4, 'filter', '-m recent --update --seconds 60 --hitcount 4 --rttl --name SSH -j DROP',
     '-m recent --update --seconds 60 --hitcount 4 --rttl --name SSH --mask 255.255.255.255 --rsource -j DROP'),
    (4, 'filter', '-m recent ! --rcheck --seconds 30 --reap --name X --mask 255.255.255.0 --rdest',
     '-m recent ! --rcheck --seconds 30 --reap --name X --mask 255.255.255.0 --rdest'),
    (6, 'filter', '-m recent --set',
     '-m recent --set --name DEFAULT --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource'),
    (4, 'raw', '-p tcp --dport 21 -j CT --helper ftp',
     '-p tcp -m tcp --dport 21 -j CT --helper ftp'),
    (4, 'raw', '-j CT --notrack',
     '-j CT --notrack'),
    (4, 'raw', '-j NOTRACK',
     '-j NOTRACK'),
    (4, 'raw', '-j CT --zone 5',
     '-j CT --zone 5'),
    (4, 'raw', '-j CT --zone-orig mark --ctevents new,destroy --expevents new',
     '-j CT --ctevents new,destroy --expevents new --zone-orig mark'),
    (6, 'filter', '-p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT',
     '-p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT'),
    (6, 'filter', '-p ipv6-icmp -m icmp6 ! --icmpv6-type 1/4',
     '-p ipv6-icmp -m icmp6 ! --icmpv6-type 1/4'),
    (6, 'filter', '-p icmpv6 -m icmp6 --icmpv6-type neighbor-solicitation',
     '-p ipv6-icmp -m icmp6 --icmpv6-type 135'),
    (6, 'filter', '-m hl --hl-eq 255',
     '-m hl --hl-eq 255'),
    (6, 'filter', '-m hl ! --hl-eq 1',
     '-m hl ! --hl-eq 1'),
    (6, 'filter', '-m hl --hl-lt 5',
     '-m hl --hl-lt 5'),
    (4, 'filter', '-m ttl --ttl-gt 64',
     '-m ttl --ttl-gt 64'),
    (4, 'filter', '-m owner --uid-owner 1000 -j ACCEPT',
     '-m owner --uid-owner 1000 -j ACCEPT'),
    (4, 'filter', '-m owner ! --uid-owner 0-99 --gid-owner 5 --suppl-groups',
     '-m owner ! --uid-owner 0-99 --gid-owner 5 --suppl-groups'),
    (4, 'filter', '-m owner --socket-exists',
     '-m owner --socket-exists'),
    (4, 'filter', '-p tcp -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name ssh',
     '-p tcp -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name ssh'),
    (4, 'filter', '-m hashlimit --hashlimit-above 60/min --hashlimit-mode srcip,dstport --hashlimit-name a -j DROP',
     '-m hashlimit --hashlimit-above 1/sec --hashlimit-burst 5 --hashlimit-mode srcip,dstport --hashlimit-name a --hashlimit-htable-expire 60000 -j DROP'),
    (4, 'filter', '-m hashlimit --hashlimit 5/hour --hashlimit-name b --hashlimit-htable-expire 10000 --hashlimit-srcmask 24',
     '-m hashlimit --hashlimit-upto 5/hour --hashlimit-burst 5 --hashlimit-name b --hashlimit-htable-expire 10000 --hashlimit-srcmask 24'),
    (4, 'filter', '-m hashlimit --hashlimit-upto 1mb/s --hashlimit-burst 2mb --hashlimit-name c',
     '-m hashlimit --hashlimit-upto 1mb/s --hashlimit-burst 2mb --hashlimit-name c'),
    (4, 'filter', '-m hashlimit --hashlimit-upto 512kb/s --hashlimit-name d --hashlimit-mode dstip',
     '-m hashlimit --hashlimit-upto 512kb/s --hashlimit-mode dstip --hashlimit-name d'),
    (4, 'filter', '-m hashlimit ! --hashlimit-above 100/s --hashlimit-name e --hashlimit-htable-size 1024 --hashlimit-htable-max 2048 --hashlimit-htable-gcinterval 500',
     '-m hashlimit --hashlimit-upto 100/sec --hashlimit-burst 5 --hashlimit-name e --hashlimit-htable-size 1024 --hashlimit-htable-max 2048 --hashlimit-htable-gcinterval 500'),
    (6, 'filter', '-m hashlimit --hashlimit-upto 5/s --hashlimit-name f --hashlimit-srcmask 64 --hashlimit-dstmask 128',
     '-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name f --hashlimit-srcmask 64'),
    (4, 'filter', '-m hashlimit --hashlimit-upto 5/min --hashlimit-name g --hashlimit-rate-match --hashlimit-rate-interval 5',
     '-m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name g --hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 5'),
    (4, 'filter', '-m set --match-set S1 src -j DROP',
     '-m set --match-set S1 src -j DROP'),
    (4, 'filter', '-m set ! --match-set S2 dst,dst --return-nomatch ! --update-counters --packets-gt 5 ! --bytes-eq 10',
     '-m set ! --match-set S2 dst,dst --return-nomatch ! --update-counters --packets-gt 5 ! --bytes-eq 10'),
    (4, 'filter', '-j SET --add-set S1 src --exist --timeout 60',
     '-j SET --add-set S1 src --exist --timeout 60'),
    (4, 'filter', '-j SET --del-set S2 dst,dst',
     '-j SET --del-set S2 dst,dst'),
    (4, 'filter', '-j NFLOG --nflog-group 5 --nflog-prefix "my prefix" --nflog-threshold 3',
     '-j NFLOG --nflog-prefix "my prefix" --nflog-group 5 --nflog-threshold 3'),
    (4, 'filter', '-j NFLOG --nflog-size 128',
     '-j NFLOG --nflog-size 128'),
    (4, 'filter', '-j NFLOG',
     '-j NFLOG'),
    (4, 'filter', '-p sctp -m sctp --dport 5000:5010 ! --sport 9',
     '-p sctp -m sctp ! --sport 9 --dport 5000:5010'),
    (4, 'filter', '-p sctp -m sctp --chunk-types any INIT,SACK',
     '-p sctp -m sctp --chunk-types any INIT,SACK'),
    (4, 'mangle', '-p udp --dport 68 -j CHECKSUM --checksum-fill',
     '-p udp -m udp --dport 68 -j CHECKSUM --checksum-fill'),
    (4, 'filter', '-m physdev --physdev-is-bridged -j ACCEPT',
     '-m physdev --physdev-is-bridged -j ACCEPT'),
    (4, 'filter', '-m physdev --physdev-in eth0 ! --physdev-out vnet+ --physdev-is-in ! --physdev-is-out',
     '-m physdev --physdev-is-in --physdev-in eth0 ! --physdev-is-out ! --physdev-out vnet+'),
    (4, 'filter', '-m iprange --src-range 10.0.0.1-10.0.0.50 ! --dst-range 192.168.1.1-192.168.1.2',
     '-m iprange --src-range 10.0.0.1-10.0.0.50 ! --dst-range 192.168.1.1-192.168.1.2'),
    (6, 'filter', '-m iprange --src-range 2001:db8::1-2001:db8::ff',
     '-m iprange --src-range 2001:db8::1-2001:db8::ff'),
    (4, 'mangle', '-j CONNMARK --save-mark',
     '-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff'),
    (4, 'mangle', '-j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xf0',
     '-j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xf0'),
    (4, 'mangle', '-j CONNMARK --set-mark 0x1/0x2',
     '-j CONNMARK --set-xmark 0x1/0x3'),
    (4, 'mangle', '-j CONNMARK --set-xmark 0x4',
     '-j CONNMARK --set-xmark 0x4/0xffffffff'),
    (4, 'mangle', '-j CONNMARK --and-mark 0xff',
     '-j CONNMARK --set-xmark 0x0/0xffffff00'),
    (4, 'mangle', '-j CONNMARK --or-mark 0x10',
     '-j CONNMARK --set-xmark 0x10/0x10'),
    (4, 'mangle', '-j CONNMARK --save-mark --mask 0xffff',
     '-j CONNMARK --save-mark --nfmask 0xffff --ctmask 0xffff'),
    (4, 'mangle', '-j CONNMARK --restore-mark --left-shift-mark 8',
     '-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff --left-shift-mark 8'),
    (4, 'mangle', '-j MARK --set-mark 0x1/0x2',
     '-j MARK --set-xmark 0x1/0x3'),
    (4, 'mangle', '-j MARK --or-mark 0x4000',
     '-j MARK --set-xmark 0x4000/0x4000'),
    (4, 'filter', '-m connmark --mark 0x1/0xff',
     '-m connmark --mark 0x1/0xff'),
    (4, 'filter', '-m connmark ! --mark 5',
     '-m connmark ! --mark 0x5'),
    (4, 'filter', '-m pkttype --pkt-type broadcast -j DROP',
     '-m pkttype --pkt-type broadcast -j DROP'),
    (4, 'filter', '-m pkttype ! --pkt-type host',
     '-m pkttype ! --pkt-type unicast'),
    (4, 'mangle', '-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu',
     '-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu'),
    (4, 'mangle', '-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400',
     '-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400'),
    (6, 'filter', '-m rt --rt-type 0 --rt-segsleft 0 -j DROP',
     '-m rt --rt-type 0 --rt-segsleft 0 -j DROP'),
    (6, 'filter', '-m rt ! --rt-type 2 --rt-segsleft 1:5 ! --rt-len 3',
     '-m rt ! --rt-type 2 --rt-segsleft 1:5 ! --rt-len 3'),
    (6, 'filter', '-m rt --rt-segsleft 0:4294967295',
     '-m rt'),
    (4, 'filter', '-m policy --dir in --pol ipsec -j ACCEPT',
     '-m policy --dir in --pol ipsec -j ACCEPT'),
    (4, 'filter', '-m policy --dir out --pol none',
     '-m policy --dir out --pol none'),
    (4, 'filter', '-m policy --dir in --pol ipsec --strict --reqid 5 --proto esp --mode tunnel --tunnel-src 10.0.0.1 --tunnel-dst 10.1.0.0/16 --next --spi 0x100 ! --proto ah',
     '-m policy --dir in --pol ipsec --strict --reqid 5 --proto esp --mode tunnel --tunnel-dst 10.1.0.0/16 --tunnel-src 10.0.0.1 --next --spi 0x100 ! --proto ah'),
    (4, 'nat', '-d 10.0.0.0/24 -j NETMAP --to 192.168.0.0/24',
     '-d 10.0.0.0/24 -j NETMAP --to 192.168.0.0/24'),
    (6, 'nat', '-s fd00::/64 -j NETMAP --to 2001:db8::/64',
     '-s fd00::/64 -j NETMAP --to 2001:db8::/64'),
    (4, 'filter', '-m statistic --mode random --probability 0.5',
     '-m statistic --mode random --probability 0.50000000000'),
    (4, 'filter', '-m statistic --mode random --probability 0.33333333349',
     '-m statistic --mode random --probability 0.33333333349'),
    (4, 'filter', '-m statistic --mode random ! --probability 0.1',
     '-m statistic --mode random ! --probability 0.10000000009'),
    (4, 'filter', '-m statistic --mode nth --every 3 --packet 1',
     '-m statistic --mode nth --every 3 --packet 1'),
    (4, 'filter', '-m statistic --mode nth --every 2 --packet 0',
     '-m statistic --mode nth --every 2 --packet 0'),
    (4, 'filter', '-m nfacct --nfacct-name acc1',
     '-m nfacct --nfacct-name  acc1'),
    (4, 'raw', '-m rpfilter --invert -j DROP',
     '-m rpfilter --invert -j DROP'),
    (4, 'mangle', '-m rpfilter --loose --validmark --accept-local',
     '-m rpfilter --loose --validmark --accept-local'),
    (4, 'raw', '-j TRACE',
     '-j TRACE'),
    (4, 'filter', '-p tcp -m connlimit --connlimit-above 10 -j REJECT',
     '-p tcp -m connlimit --connlimit-above 10 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with icmp-port-unreachable'),
    (4, 'filter', '-p tcp -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr',
     '-p tcp -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr'),
    (4, 'filter', '-p tcp -m connlimit ! --connlimit-above 3',
     '-p tcp -m connlimit --connlimit-upto 3 --connlimit-mask 32 --connlimit-saddr'),
    (6, 'filter', '-p tcp -m connlimit --connlimit-above 3',
     '-p tcp -m connlimit --connlimit-above 3 --connlimit-mask 128 --connlimit-saddr'),
    (4, 'filter', '-m helper --helper ftp',
     '-m helper --helper ftp'),
    (4, 'filter', '-m helper ! --helper "sip"',
     '-m helper ! --helper sip'),
    (4, 'filter', '-m length --length 0:100',
     '-m length --length 0:100'),
    (4, 'filter', '-m length ! --length 1500',
     '-m length ! --length 1500'),
    (4, 'filter', '-p tcp -m tcpmss --mss 1000:1500',
     '-p tcp -m tcpmss --mss 1000:1500'),
    (4, 'filter', '-p esp -m esp --espspi 100:200',
     '-p esp -m esp --espspi 100:200'),
    (4, 'filter', '-p esp -m esp ! --espspi 5',
     '-p esp -m esp ! --espspi 5'),
    (4, 'filter', '-p ah -m ah --ahspi 500',
     '-p ah -m ah --ahspi 500'),
    (4, 'filter', '-j NFQUEUE --queue-num 3',
     '-j NFQUEUE --queue-num 3'),
    (4, 'filter', '-j NFQUEUE --queue-balance 0:3 --queue-bypass --queue-cpu-fanout',
     '-j NFQUEUE --queue-balance 0:3 --queue-bypass --queue-cpu-fanout'),
    (4, 'filter', '-j NFQUEUE',
     '-j NFQUEUE --queue-num 0'),
    (4, 'filter', '-j AUDIT --type drop',
     '-j AUDIT --type drop'),
    (4, 'mangle', '-j CLASSIFY --set-class 1:10',
     '-j CLASSIFY --set-class 0001:0010'),
    (4, 'mangle', '-p tcp -j TPROXY --on-port 3128 --tproxy-mark 0x1/0x1',
     '-p tcp -j TPROXY --on-port 3128 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1'),
    (4, 'mangle', '-p tcp -j TPROXY --on-port 3128 --on-ip 127.0.0.1',
     '-p tcp -j TPROXY --on-port 3128 --on-ip 127.0.0.1 --tproxy-mark 0x0/0x0'),
    (6, 'mangle', '-p tcp -j TPROXY --on-port 3128',
     '-p tcp -j TPROXY --on-port 3128 --on-ip :: --tproxy-mark 0x0/0x0'),
    (4, 'mangle', '-j TEE --gateway 10.0.0.2',
     '-j TEE --gateway 10.0.0.2'),
    (4, 'filter', '-m quota --quota 1000000',
     '-m quota --quota 1000000'),
    (4, 'filter', '-m quota ! --quota 5',
     '-m quota ! --quota 5'),
    (4, 'filter', '-m cpu --cpu 1',
     '-m cpu --cpu 1'),
    (4, 'filter', '-m tos --tos 0x10',
     '-m tos --tos 0x10/0xff'),
    (4, 'filter', '-m tos ! --tos Minimize-Delay',
     '-m tos ! --tos 0x10/0x3f'),
    (4, 'filter', '-m tos --tos 0x08/0x0c',
     '-m tos --tos 0x08/0x0c'),
    (4, 'mangle', '-j TOS --set-tos 0x10',
     '-j TOS --set-tos 0x10/0xff'),
    (4, 'mangle', '-j TOS --set-tos Minimize-Cost',
     '-j TOS --set-tos 0x02/0x3f'),
    (4, 'mangle', '-j TOS --and-tos 0x0f',
     '-j TOS --set-tos 0x00/0xf0'),
    (4, 'filter', '-m dscp --dscp 10',
     '-m dscp --dscp 0x0a'),
    (4, 'filter', '-m dscp ! --dscp-class AF41',
     '-m dscp ! --dscp 0x22'),
    (4, 'mangle', '-j DSCP --set-dscp 0x2e',
     '-j DSCP --set-dscp 0x2e'),
    (4, 'mangle', '-j DSCP --set-dscp-class EF',
     '-j DSCP --set-dscp 0x2e'),
    (4, 'mangle', '-j TTL --ttl-set 64',
     '-j TTL --ttl-set 64'),
    (4, 'mangle', '-j TTL --ttl-dec 1',
     '-j TTL --ttl-dec 1'),
    (6, 'mangle', '-j HL --hl-inc 2',
     '-j HL --hl-inc 2'),
    (4, 'filter', '-p tcp -m ecn --ecn-tcp-cwr ! --ecn-tcp-ece --ecn-ip-ect 2',
     '-p tcp -m ecn ! --ecn-tcp-ece --ecn-tcp-cwr --ecn-ip-ect 2'),
    (4, 'filter', '-m devgroup --src-group 0x2 ! --dst-group 0x3/0xf',
     '-m devgroup --src-group 0x2 ! --dst-group 0x3/0xf'),
    (4, 'filter', '-m string --string "GET /" --algo bm',
     '-m string --string "GET /" --algo bm'),
    (4, 'filter', '-m string ! --string "a\\"b" --algo kmp --from 10 --to 100 --icase',
     '-m string ! --string "a\\"b" --algo kmp --from 10 --to 100 --icase'),
    (4, 'filter', '-m string --hex-string "|0d0a|Host" --algo bm',
     '-m string --hex-string "|0d0a486f7374|" --algo bm'),
    (4, 'filter', '-m time --timestart 08:00 --timestop 17:30:15 --weekdays Mon,Tue,Fri',
     '-m time --timestart 08:00:00 --timestop 17:30:15 --weekdays Mon,Tue,Fri --datestop 2038-01-19T03:14:07'),
    (4, 'filter', '-m time ! --weekdays Sat,Sun --kerneltz',
     '-m time --weekdays Mon,Tue,Wed,Thu,Fri --datestop 2038-01-19T03:14:07 --kerneltz'),
    (4, 'filter', '-m time --monthdays 1,15,31 --datestart 2020-01-01 --datestop 2021-06-30T12:00',
     '-m time --monthdays 1,15,31 --datestart 2020-01-01T00:00:00 --datestop 2021-06-30T12:00:00'),
    (4, 'filter', '-m time --timestart 22:00 --timestop 04:00 --contiguous',
     '-m time --timestart 22:00:00 --timestop 04:00:00 --datestop 2038-01-19T03:14:07 --contiguous'),
    (4, 'filter', '-m connbytes --connbytes 10000: --connbytes-dir both --connbytes-mode bytes',
     '-m connbytes --connbytes 10000 --connbytes-mode bytes --connbytes-dir both'),
    (4, 'filter', '-m connbytes ! --connbytes 0:10 --connbytes-dir original --connbytes-mode packets',
     '-m connbytes ! --connbytes 0:10 --connbytes-mode packets --connbytes-dir original'),
    (4, 'security', '-j CONNSECMARK --save',
     '-j CONNSECMARK --save'),
    (4, 'filter', '-p tcp -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460',
     '-p tcp -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460'),
    (4, 'mangle', '-p tcp -m socket --transparent --nowildcard',
     '-p tcp -m socket --transparent --nowildcard'),
    (4, 'mangle', '-m socket',
     '-m socket'),
    (4, 'filter', '-m cgroup --cgroup 1',
     '-m cgroup --cgroup 1'),
    (6, 'filter', '-m frag --fragid 5:10 --fraglen 8 --fragfirst --fragmore',
     '-m frag --fragid 5:10 --fraglen 8 --fragfirst --fragmore'),
    (6, 'filter', '-m frag ! --fragid 1 --fraglast',
     '-m frag ! --fragid 1 --fraglast'),
    (4, 'filter', '-m conntrack --ctstate NEW --ctproto tcp --ctorigdst 10.0.0.1 --ctorigdstport 80 --ctexpire 10:20 --ctdir REPLY',
     '-m conntrack --ctstate NEW --ctproto 6 --ctorigdst 10.0.0.1 --ctorigdstport 80 --ctexpire 10:20 --ctdir REPLY'),
    (4, 'filter', '-m conntrack ! --ctstatus ASSURED --ctorigsrc 10.0.0.0/8',
     '-m conntrack --ctorigsrc 10.0.0.0/8 ! --ctstatus ASSURED'),
    (4, 'filter', '-p tcp -m multiport --dports 80,443,8000:9000',
     '-p tcp -m multiport --dports 80,443,8000:9000'),
    (4, 'filter', '-p udp -m udp --dport 60000:29',
     '-p udp -m udp --dport 60000:29'),
    (4, 'filter', '-p tcp -m tcp ! --syn --sport 1:1023',
     '-p tcp -m tcp --sport 1:1023 ! --tcp-flags FIN,SYN,RST,ACK SYN'),
    (4, 'filter', '-j LOG --log-prefix "a b" --log-level 6 --log-uid',
     '-j LOG --log-prefix "a b" --log-level 6 --log-uid'),
    (4, 'filter', '-m addrtype --dst-type LOCAL --limit-iface-in',
     '-m addrtype --dst-type LOCAL --limit-iface-in'),
    (4, 'nat', '-p tcp -j DNAT --to-destination 10.0.0.1:80-90 --random --persistent',
     '-p tcp -j DNAT --to-destination 10.0.0.1:80-90 --random --persistent'),
    (4, 'nat', '-j SNAT --to-source 1.2.3.4-1.2.3.10 --random-fully',
     '-j SNAT --to-source 1.2.3.4-1.2.3.10 --random-fully'),
    (6, 'nat', '-p tcp -j DNAT --to-destination [fd00::1]:8080',
     '-p tcp -j DNAT --to-destination [fd00::1]:8080'),
    (4, 'nat', '-p tcp -j MASQUERADE --to-ports 1024-2048 --random',
     '-p tcp -j MASQUERADE --to-ports 1024-2048 --random'),
    (4, 'nat', '-p tcp -j REDIRECT --to-ports 3128',
     '-p tcp -j REDIRECT --to-ports 3128'),
    (6, 'filter', '-j REJECT --reject-with icmp6-adm-prohibited',
     '-j REJECT --reject-with icmp6-adm-prohibited'),
    (4, 'filter', '-p tcp -j REJECT --reject-with tcp-reset',
     '-p tcp -j REJECT --reject-with tcp-reset'),
    (4, 'filter', '-m comment --comment "it\'s \\"quoted\\"" -j ACCEPT',
     '-m comment --comment "it\\\'s \\"quoted\\"" -j ACCEPT'),
    (6, 'filter', '-p mh -m mh --mh-type binding-update',
     '-p mobility-header -m mh --mh-type 5'),
    (6, 'filter', '-p mh -m mh ! --mh-type 1:hot',
     '-p mobility-header -m mh ! --mh-type 1:3'),
    (6, 'filter', '-p mh -m mh --mh-type :',
     '-p mobility-header -m mh'),
    (6, 'filter', '-m eui64',
     '-m eui64'),
    (4, 'filter', '-m realm --realm 0x10/0xff',
     '-m realm --realm 0x10/0xff'),
    (4, 'filter', '-m realm ! --realm 5',
     '-m realm ! --realm 0x5'),
    (4, 'filter', '-p 108 -m ipcomp --ipcompspi 4:8 --compres',
     '-p ipcomp -m ipcomp --ipcompspi 4:8 --compres'),
    (4, 'mangle', '-p tcp -j ECN --ecn-tcp-remove',
     '-p tcp -j ECN --ecn-tcp-remove'),
    (4, 'mangle', '-p tcp -j ECN --ecn-tcp-ece 1 --ecn-tcp-cwr 0',
     '-p tcp -j ECN --ecn-tcp-ece 1 --ecn-tcp-cwr 0'),
    (4, 'filter', '-j IDLETIMER --timeout 60 --label foo',
     '-j IDLETIMER --timeout 60 --label foo'),
    (4, 'filter', '-m cluster --cluster-total-nodes 2 --cluster-local-node 1 --cluster-hash-seed 0xdeadbeef',
     '-m cluster --cluster-local-nodemask 0x00000001 --cluster-total-nodes 2 --cluster-hash-seed 0xdeadbeef'),
    (4, 'filter', '-m cluster --cluster-total-nodes 4 ! --cluster-local-nodemask 5 --cluster-hash-seed 7',
     '-m cluster ! --cluster-local-nodemask 0x00000005 --cluster-total-nodes 4 --cluster-hash-seed 0x00000007'),
    (6, 'mangle', '-j DNPT --src-pfx fd00::/64 --dst-pfx 2001:db8::/64',
     '-j DNPT --src-pfx fd00::/64 --dst-pfx 2001:db8::/64'),
    (6, 'mangle', '-j SNPT --src-pfx 2001:db8::/64 --dst-pfx fd00::/64',
     '-j SNPT --src-pfx 2001:db8::/64 --dst-pfx fd00::/64'),
    (4, 'filter', '-p dccp -m dccp --sport 10:20 ! --dport 5 --dccp-types REQUEST,ack,INVALID --dccp-option 3',
     '-p dccp -m dccp --sport 10:20 ! --dport 5 --dccp-types REQUEST,ACK,INVALID --dccp-option 3'),
    (4, 'filter', '-p dccp -m dccp ! --dccp-types SYNC',
     '-p dccp -m dccp ! --dccp-types SYNC'),
    (6, 'filter', '-m ipv6header --header hop-by-hop,ipv6-frag,esp --soft',
     '-m ipv6header --header hop-by-hop,ipv6-frag,esp --soft'),
    (6, 'filter', '-m ipv6header ! --header dst,route,auth,none,prot',
     '-m ipv6header ! --header ipv6-opts,ipv6-route,ah,ipv6-nonxt,protocol'),
    (4, 'mangle', '-p udp --dport 4789 -m u32 --u32 "0>>22&0x3C@12&0xFFFFFF00=0x100" -j DROP',
     '-p udp -m udp --dport 4789 -m u32 --u32 "0x0>>0x16&0x3c@0xc&0xffffff00=0x100" -j DROP'),
    (4, 'filter', '-m u32 ! --u32 "6 & 0xFF = 1 && 4 & 0x3FFF = 0 && 0 >> 22 & 0x3C @ 0 >> 24 = 0:8,17"',
     '-m u32 ! --u32 "0x6&0xff=0x1&&0x4&0x3fff=0x0&&0x0>>0x16&0x3c@0x0>>0x18=0x0:0x8,0x11"'),
]


def _rule(spec: str, family: int = 4, table: str = "filter") -> Rule:
    rs = parse_rulespec(split_args(spec), family)
    return Rule(table, "X", rs.header, rs.matches, rs.target, rs.goto)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _ext(spec: str, family: int = 4):
    r = _rule(spec, family)
    return r.target if not r.matches else r.matches[-1]


@pytest.mark.parametrize("family,table,spec,saved", SAVE_FORMS, ids=[v[2] for v in SAVE_FORMS])
def test_save_form(family: int, table: str, spec: str, saved: str) -> None:
    """Our print of the input is what iptables-save prints (blank runs aside: iptables 1.8.9
    writes ``--nfacct-name  NAME`` with two)."""
    assert _squash(" ".join(_rule(spec, family, table).save_args())) == _squash(saved)


@pytest.mark.parametrize("family,table,spec,saved", SAVE_FORMS, ids=[v[2] for v in SAVE_FORMS])
def test_parse_save_is_identity(family: int, table: str, spec: str, saved: str) -> None:
    """parse(save(x)) == x on iptables' own (canonical) form, module by module; on any input,
    saving what was read back from our save changes nothing."""
    canonical = _rule(saved, family, table)
    again = _rule(" ".join(canonical.save_args()), family, table)
    assert again.matches == canonical.matches
    assert again.target == canonical.target
    assert again.header == canonical.header
    first = _rule(spec, family, table)
    text = " ".join(first.save_args())
    assert " ".join(_rule(text, family, table).save_args()) == text


def test_save_forms_still_match_real_iptables() -> None:
    reason = iptables_ns.available()
    if reason:
        if IN_CI:
            raise AssertionError(f"cannot run real iptables under CI: {reason}")
        pytest.skip(reason)
    jobs = [
        {"text": f"*{table}\n:X - [0:0]\n-A X {spec}\nCOMMIT\n", "family": family,
         "sets": [["S1", 1, family], ["S2", 2, family]], "nfacct": ["acc1"]}
        for family, table, spec, _ in SAVE_FORMS
    ]
    results = iptables_ns.run_jobs(jobs)
    for (family, table, spec, saved), res in zip(SAVE_FORMS, results):
        assert res["rc"] == 0, f"{spec}: {res['stderr']}"
        got = [line[5:] for line in res["save"].splitlines() if line.startswith("-A X ")]
        assert got == [saved], spec


# -- typed fields -----------------------------------------------------------------------------


def test_every_module_is_a_real_iptables_module() -> None:
    load_all()
    for name in MATCHES:
        assert name in IPTABLES_MATCHES, name
    for name in TARGETS:
        assert name in IPTABLES_TARGETS or name == "standard" or name in ("ACCEPT", "DROP", "RETURN", "QUEUE"), name


def test_terminal_flags() -> None:
    continuing = ("NFLOG", "TRACE", "CONNMARK", "CT", "NOTRACK", "CHECKSUM", "TCPMSS", "TOS", "DSCP",
                  "TTL", "HL", "SET", "AUDIT", "CLASSIFY", "SECMARK", "CONNSECMARK", "TEE", "LOG", "MARK")
    for name in continuing:
        assert target_class(name).terminal is False, name
    for name in ("ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP",
                 "NFQUEUE", "TPROXY", "SYNPROXY"):
        assert target_class(name).terminal is True, name


def test_table_only() -> None:
    assert target_class("CT").table_only == ("raw",)
    assert target_class("NOTRACK").table_only == ("raw",)
    assert target_class("TRACE").table_only == ("raw",)
    assert target_class("NETMAP").table_only == ("nat",)
    assert "mangle" in target_class("TPROXY").table_only


def test_limit_rate() -> None:
    m = _ext("-m limit --limit 60/min --limit-burst 10")
    assert m.rate == pytest.approx(1.0)
    assert m.burst == 10
    default = _ext("-m limit")
    assert default.rate == pytest.approx(3 / 3600, rel=1e-3) and default.burst == 5


def test_statistic() -> None:
    m = _ext("-m statistic --mode random --probability 0.33333333349")
    assert m.mode == "random" and not m.inverted
    assert m.probability == pytest.approx(1 / 3, abs=1e-9)
    nth = _ext("-m statistic --mode nth --every 3 --packet 1")
    assert (nth.mode, nth.every, nth.packet) == ("nth", 3, 1)


def test_set_match() -> None:
    m = _ext("-m set ! --match-set KUBE-CLUSTER-IP dst,dst --return-nomatch")
    assert m.set_name == "KUBE-CLUSTER-IP"
    assert m.flags == ("dst", "dst")
    assert m.inverted and m.return_nomatch
    assert m.set_refs() == [("KUBE-CLUSTER-IP", 2)]
    t = _ext("-j SET --add-set f2b src --exist")
    assert t.add_set.name == "f2b" and t.add_set.flags == ("src",)


def test_physdev() -> None:
    m = _ext("-m physdev --physdev-in eth0 ! --physdev-out vnet+ --physdev-is-bridged")
    assert m.physdev_in == ("eth0", False)
    assert m.physdev_out == ("vnet+", True)
    assert m.is_bridged is True
    assert _ext("-m physdev ! --physdev-is-bridged").is_bridged is False


def test_connmark_target_ops() -> None:
    op = _ext("-j CONNMARK --save-mark --mask 0xff").op
    assert (op.mode, op.nfmask, op.ctmask) == ("save", 0xFF, 0xFF)
    op = _ext("-j CONNMARK --set-mark 0x1/0x2").op
    assert (op.mode, op.ctmark, op.ctmask) == ("set", 0x1, 0x3)
    op = _ext("-j CONNMARK --and-mark 0xff").op
    assert (op.ctmark, op.ctmask) == (0, 0xFFFFFF00)
    op = _ext("-j CONNMARK --restore-mark --left-shift-mark 8").op
    assert op.mode == "restore" and op.shift == ("left", 8)


def test_ct_target() -> None:
    t = _ext("-j CT --notrack")
    assert t.notrack and t.helper is None
    t = _ext("-j CT --helper ftp --zone-reply 7")
    assert not t.notrack and t.helper == "ftp" and t.zone == (7, "reply")
    assert _ext("-j NOTRACK").notrack


def test_recent() -> None:
    m = _ext("-m recent ! --update --seconds 60 --hitcount 4 --name SSH --rdest")
    assert m.operation == "update" and m.inverted
    assert (m.seconds, m.hitcount, m.list_name, m.side) == (60, 4, "SSH", "dest")
    assert m.mask_address(4).mask == 0xFFFFFFFF
    assert _ext("-m recent --set").list_name == "DEFAULT"


def test_hashlimit_cfg() -> None:
    c = _ext("-m hashlimit --hashlimit-upto 60/min --hashlimit-name x --hashlimit-mode srcip").cfg
    assert not c.above and c.modes == frozenset({"srcip"})
    assert c.avg == 1_000_000 and c.expire == 60_000 and c.burst == 5
    c = _ext("-m hashlimit ! --hashlimit-above 5/s --hashlimit-name y").cfg
    assert c.above is False  # "! --hashlimit-above" is "--hashlimit-upto"


def test_mac_and_anonymized_mac() -> None:
    m = _ext("-m mac --mac-source 00:1A:2b:3c:4d:5e")
    assert str(m.source) == "00:1a:2b:3c:4d:5e" and not m.anonymized and m.notes() == ()
    anon = _ext("-m mac ! --mac-source XX:XX:XX:XX:XX:XX")
    assert anon.anonymized and anon.get("source").invert
    assert anon.notes()[0][0] == "anonymized"
    assert anon.save_args() == ["!", "--mac-source", "XX:XX:XX:XX:XX:XX"]


def test_owner_iprange_time() -> None:
    o = _ext("-m owner ! --uid-owner 0-99")
    assert (o.uid.low, o.uid.high) == (0, 99) and o.get("uid").invert
    r = _ext("-m iprange --src-range 10.0.0.1-10.0.0.50").value("src_range")
    assert r.contains(0x0A000005) and not r.contains(0x0A000033)
    t = _ext("-m time ! --weekdays Sat,Sun --timestart 08:00").info
    assert t.weekdays == sum(1 << d for d in range(1, 6))
    assert t.daytime_start == 8 * 3600


def test_policy_elements() -> None:
    m = _ext("-m policy --dir in --pol ipsec --strict --reqid 5 --proto esp --next ! --spi 0x100")
    assert m.direction == "in" and m.policy == "ipsec"
    assert len(m.elements) == 2
    assert m.elements[0].get("reqid") == (5, False)
    assert m.elements[1].get("spi") == (0x100, True)


def test_icmp6_and_hl() -> None:
    assert _ext("-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation", 6).icmp_type == (135, 0, 255)
    assert _ext("-m hl ! --hl-eq 1", 6).comparison == ("ne", 1)


def test_nfqueue_and_tproxy() -> None:
    assert _ext("-j NFQUEUE --queue-balance 2:5 --queue-bypass").queues == (2, 5)
    assert _ext("-j TPROXY --on-port 3128 --tproxy-mark 0x1/0x1").mark == (1, 1)


@pytest.mark.parametrize("spec,message", [
    ("-m mac --mac-source 00:11:22:33:44", "Invalid MAC address"),
    ("-m limit --limit 3/fortnight", "bad rate"),
    ("-m limit --limit-burst 20000", "out of range"),
    ("-m statistic --mode random", "--probability must be specified"),
    ("-m statistic --mode nth --every 2 --packet 5", "the --packet p must be"),
    ("-m recent --set --rcheck", "you must specify one of"),
    ("-m set --match-set S foo", "'src' or 'dst'"),
    ("-p tcp -m multiport --dports 90:80", "invalid portrange"),
    ("-j CONNMARK --save-mark --restore-mark", "only one operation"),
    ("-m hashlimit --hashlimit-upto 5/s", "--hashlimit-name is required"),
    ("-m policy --pol ipsec", "neither --dir in nor --dir out"),
    ("-m time --timestart 25:00", "invalid time"),
    ("-m string --string x", "--algo"),
    ("-m owner --suppl-groups", "requires --gid-owner"),
    ("-j TCPMSS", "exactly one of"),
    ("-m connlimit --connlimit-mask 24", "--connlimit-above"),
])
def test_option_errors(spec: str, message: str) -> None:
    with pytest.raises(OptionError) as err:
        _rule(spec)
    assert message in str(err.value)


def test_abbreviated_option_like_getopt() -> None:
    """getopt_long takes an unambiguous prefix: ``--mac`` is ``--mac-source``."""
    assert _rule("-m mac --mac 00:11:22:33:44:55").save_args() == ["-m", "mac", "--mac-source", "00:11:22:33:44:55"]
    with pytest.raises(OptionError, match="ambiguous"):
        _rule("-m hashlimit --hashlimit-u 5/s --hashlimit-name x --hashlimit-h 5")


def test_match_class_lookup() -> None:
    assert match_class("limit").name == "limit"
    assert target_class("CONNMARK").name == "CONNMARK"
    assert match_class("no-such-module") is None


def test_every_registered_name_is_found_without_loading_every_module() -> None:
    """A lookup imports only the module named after the extension (libxt_NAME, libipt_NAME,
    libip6t_NAME) or the one ext._HOME names; a name registered elsewhere would be missed."""
    import importlib

    import iptexplain.ext as ext

    ext.load_all()
    modules = ext._module_names()
    for table in (ext.MATCHES, ext.TARGETS):
        for name, cls in table.items():
            home = ext._HOME.get(name)
            homes = {home} if home else {p + name for p in ext._PREFIXES} & modules
            assert homes, f"{name}: no module named after it and none in ext._HOME"
            # Importing a home module imports the class's own module, which registers it.
            assert any(vars(importlib.import_module(f"iptexplain.ext.{h}")).get(cls.__name__) is cls for h in homes), \
                f"{name} is registered by {cls.__module__}, which none of {sorted(homes)} imports"


def test_a_chain_name_lookup_loads_no_module() -> None:
    import subprocess
    import sys

    code = ("import sys; from iptexplain.ext import target_class, match_class\n"
            "assert target_class('KUBE-SVC-N2VPCNTUQU6S4BH5') is None and match_class('nosuch') is None\n"
            "assert target_class('DNAT').name == 'DNAT' and target_class('ACCEPT') is not None\n"
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('iptexplain.ext.lib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(["libxt_DNAT", "libxt_standard"])
