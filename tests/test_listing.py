"""The -L listing reader: pasted sessions, every column form, fidelity notes, and the -L face of
every extension module checked against its save face.

Pairs of the same ruleset in two formats (iptables-save and iptables -nL / -nvL, printed by
iptables 1.8.9 from one kernel state, in fixtures/listing/generated) are the main oracle: the
listing must read to the same rule graph, except for what the listing format hides, which the
reader must name.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.errors import InputError
from iptexplain.ext import MATCHES, TARGETS, load_all
from iptexplain.ext.base import split_listing_words
from iptexplain.graph import Ruleset
from iptexplain.parse import detect_format, load, parse_text
from iptexplain.parse.listing import (UnresolvedAddress, parse_command, parse_listing,
                                      read_row_tail)
from iptexplain.parse.rulespec import parse_rulespec
from iptexplain.parse.tokenize import split_args

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
LFIX = FIX / "listing"
CORPUS = Path("/work/shared/corpus")


def _forget_what_listings_hide(save: Ruleset, listing: Ruleset) -> None:
    """Put into ``save`` what the listing's notes say -L does not print (hashlimit's table name),
    so that the rest can be compared exactly."""
    from iptexplain.ext.libxt_hashlimit import Hashlimit

    if not any("hashlimit" in n.message for n in listing.notes if n.kind == "fidelity"):
        return
    for r in save.rules():
        r.matches = tuple(
            m.__class__(values=tuple((k, v) if k != "name" else (k, type(v)(Hashlimit.LISTING_NAME, v.invert))
                                     for k, v in m.values), spelled=m.spelled, nfproto=m.nfproto)
            if isinstance(m, Hashlimit) else m for m in r.matches)


def _sub(rs: Ruleset, family: int, table: str) -> Ruleset:
    out = Ruleset(source=rs.source)
    if (family, table) in rs.tables:
        out.tables[(family, table)] = rs.tables[(family, table)]
    return out


# ---------------------------------------------------------------------------------------------
# The seed: a blog post with pasted -nL listings, prose in Chinese, a prompt, and a "nat" section
# that is really the filter table again.


@pytest.fixture(scope="module")
def seed() -> Ruleset:
    return load(str(FIX / "seed-blog-listing.txt"))


def test_seed_is_detected_as_a_listing() -> None:
    assert detect_format((FIX / "seed-blog-listing.txt").read_text()) == "listing"


def test_seed_equals_the_docker_ruleset_except_interfaces(seed: Ruleset) -> None:
    save = load(str(FIX / "seed-docker.v4.save"))
    assert seed.format == "listing"
    assert save.difference(seed, ignore={"interfaces", "counters"}) is None
    assert seed.difference(save, ignore={"interfaces", "counters"}) is None
    # ... and the interface matches really are what differs: the loss is real and named.
    diff = save.difference(seed, ignore={"counters"})
    assert diff is not None and "docker0" in diff
    assert "interfaces" in seed.hidden


def test_seed_reports_the_repeated_filter_table(seed: Ruleset) -> None:
    dups = [n for n in seed.notes if n.kind == "duplicate"]
    # filter listed three times (lines 18, 72 "nat" heading, 217), nat twice.
    assert len(dups) == 3
    first = dups[0]
    assert first.line == 72 and "table filter" in first.message and "identical" in first.message
    assert "nat" in first.message  # the heading before it says nat
    inferred = [n for n in seed.notes if n.kind == "inference"]
    assert [n.line for n in inferred] == [18, 72]
    assert all("read as filter" in n.message for n in inferred)


def test_seed_fidelity_note_names_the_loss_and_the_remedy(seed: Ruleset) -> None:
    fid = [n.message for n in seed.notes if n.kind == "fidelity"]
    assert any("-v" in m and "interface" in m and "iptables-save" in m and "-nvL" in m for m in fid)
    assert {"interfaces", "counters"} <= seed.hidden


def test_seed_rules_keep_their_source_lines(seed: Ruleset) -> None:
    nat = seed.table("nat")
    assert nat is not None
    dnat = nat.chains["DOCKER"].rules[1]
    assert dnat.target_name == "DNAT" and dnat.line == 156
    assert seed.table("filter").chains["DOCKER"].rules[0].line == 46  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Pairs of the same ruleset: iptables-save vs -nvL (equal) and vs -nL (equal except interfaces).


def _pairs() -> list[tuple[str, str, int, str, str]]:
    out = []
    for lf in sorted(LFIX.glob("generated/*")):
        m = re.match(r"(.*)\.(v4|v6)\.(?:(nat|mangle|raw|filter)\.)?(nL|nvL)$", lf.name)
        if not m:
            continue
        stem, v, table, kind = m.groups()
        save = lf.with_name(f"{stem}.{v}.save")
        if save.exists():
            out.append((str(lf), str(save), 4 if v == "v4" else 6, table or "filter", kind))
    return out


PAIRS = _pairs()


def test_there_are_enough_pairs() -> None:
    kinds = {p[4] for p in PAIRS}
    assert len(PAIRS) >= 50 and kinds == {"nL", "nvL"}


@pytest.mark.parametrize("listing,save,family,table,kind", PAIRS, ids=[Path(p[0]).name for p in PAIRS])
def test_listing_equals_save(listing: str, save: str, family: int, table: str, kind: str) -> None:
    rs = load(listing)  # format, family and table all found without being told
    sv = _sub(load(save), family, table)
    _forget_what_listings_hide(sv, rs)
    assert list(rs.tables) == [(family, table)]
    ignore = {"counters"} | ({"interfaces"} if kind == "nL" else set())
    assert sv.difference(rs, ignore=ignore) is None
    assert not rs.not_understood(), rs.not_understood()
    if kind == "nL":
        assert "interfaces" in rs.hidden
        if any(r.header.iniface or r.header.outiface for r in sv.rules()):
            assert sv.difference(rs, ignore={"counters"}) is not None
    else:
        assert "interfaces" not in rs.hidden and "counters" not in rs.hidden
        assert all(r.counters is not None for r in rs.rules())


def test_docker_29_names_listing_equals_its_S_dump() -> None:
    """Docker 29's doc listings are -vL without -n: `anywhere`, `http-alt`, `loopback/8`."""
    for table in ("filter", "nat", "raw"):
        stem = LFIX / "docker" / f"moby-iptablesdoc_v29.0.0__usernet-portmap.{table}.v4"
        rs = load(f"{stem}.vL")
        sv = load(f"{stem}.S", table=table)
        assert list(rs.tables) == [(4, table)]
        assert _sub(sv, 4, table).difference(rs, ignore={"counters"}) is None
        assert "names" in rs.hidden
        assert all(r.number == i for c in rs.tables[(4, table)].chains.values() for i, r in enumerate(c.rules, 1))


TUM_SNAPSHOTS = [("2016-03-16_13-53-28", 4), ("2016-03-16_13-53-28", 6), ("2016-06-27_16-29-01", 4),
                 ("2016-06-27_16-29-01", 6), ("2015-09-03_15-56-50", 4)]


@pytest.mark.skipif(not CORPUS.exists(), reason="the shared corpus is not on this machine")
@pytest.mark.parametrize("snap,fam", TUM_SNAPSHOTS)
def test_tum_listings_equal_their_save(snap: str, fam: int) -> None:
    """The TUM chair firewall (iptables 1.4, 5,000-6,000 rules, 90 chains): -nvL and -nL of one
    snapshot read to the graph of the iptables-save dump taken at the same time."""
    d = CORPUS / "net-network"
    prog = "ip6tables" if fam == 6 else "iptables"
    stem = f"nn__configs_chair_for_Network_Architectures_and_Services__{prog}"
    sv = _sub(load(str(d / f"{stem}-save-{snap}.v{fam}.save")), fam, "filter")
    nvl = load(str(d / f"{stem}-Lnv-{snap}.v{fam}.nvL"))
    assert nvl.rule_count() > 4000 and list(nvl.tables) == [(fam, "filter")]
    assert sv.difference(nvl, ignore={"counters"}) is None
    assert "counters-rounded" in nvl.hidden
    nl_path = d / f"{stem}-Ln-{snap}.v{fam}.nL"
    if nl_path.exists():
        nl = load(str(nl_path))
        assert sv.difference(nl, ignore={"counters", "interfaces"}) is None
        assert nvl.difference(nl, ignore={"interfaces", "counters"}) is None


# ---------------------------------------------------------------------------------------------
# Every listing we have reads without a traceback.


def _all_listing_files() -> list[str]:
    files = [p for p in LFIX.rglob("*") if p.is_file()]
    if CORPUS.exists():
        files += [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md"]
    out = []
    for p in sorted(files):
        try:
            text = p.read_text(errors="replace")
        except OSError:
            continue
        if re.search(r"^\s*Chain \S+ \(", text, re.M):
            out.append(str(p))
    return out


ALL_LISTINGS = _all_listing_files()


def test_listing_files_found() -> None:
    assert len(ALL_LISTINGS) >= 60


@pytest.mark.parametrize("path", ALL_LISTINGS, ids=[Path(p).name[:80] for p in ALL_LISTINGS])
def test_every_listing_reads(path: str) -> None:
    text = Path(path).read_text(errors="replace")
    try:
        rs = parse_listing(text, path)
    except InputError as e:  # allowed: one clear line, never a traceback
        assert str(e).startswith(path)
        return
    assert rs.rule_count() > 0 or rs.tables
    for r in rs.rules():
        r.spec()  # every rule can be printed back


# ---------------------------------------------------------------------------------------------
# Rows, columns and sessions.


def _one(text: str, **kw) -> Ruleset:
    return parse_listing(text, "t", **kw)


def test_nvL_line_numbers_counters_kmg_and_empty_target() -> None:
    rs = _one("""\
Chain INPUT (policy DROP 3386K packets, 2827M bytes)
num   pkts bytes target     prot opt in     out     source               destination
1     167M  113G ACCEPT     tcp  --  eth0   *       10.0.0.0/8           0.0.0.0/0            tcp dpt:22
2        0     0            all  --  *      *       0.0.0.0/0            0.0.0.0/0
3       12   720 DROP       all  -f  !lo    *       0.0.0.0/0           !127.0.0.0/8
""")
    c = rs.table("filter").chains["INPUT"]  # type: ignore[union-attr]
    assert c.policy == "DROP" and c.counters.packets == 3386000  # type: ignore[union-attr]
    r1, r2, r3 = c.rules
    assert r1.spec() == "-A INPUT -s 10.0.0.0/8 -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT"
    assert r1.counters.packets == 167_000_000  # type: ignore[union-attr]
    assert r2.target is None and r2.spec() == "-A INPUT"
    assert r3.spec() == "-A INPUT ! -d 127.0.0.0/8 ! -i lo -f -j DROP"
    assert "counters-rounded" in rs.hidden and "interfaces" not in rs.hidden


def test_old_ip6tables_rows_without_opt_column() -> None:
    rs = _one("""\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 ACCEPT     47       *      *       ::/0                 2001:db8::1/128      state NEW
    0     0 ACCEPT     all      lo     *       ::/0                 ::/0
""")
    assert list(rs.tables) == [(6, "filter")]
    r1, r2 = rs.table("filter", 6).chains["INPUT"].rules  # type: ignore[union-attr]
    assert r1.spec() == "-A INPUT -d 2001:db8::1/128 -p gre -m state --state NEW -j ACCEPT"
    assert r2.spec() == "-A INPUT -i lo -j ACCEPT"


def test_names_goto_and_unresolved_hosts() -> None:
    rs = _one("""\
Chain FORWARD (policy ACCEPT)
target     prot opt source               destination
DOCKER     tcp  --  anywhere            !loopback/8           [goto] tcp dpt:http-alt
DROP       tcp  --  localhost            db.example.com       tcp spts:ftp-data:ftp

Chain DOCKER (1 references)
target     prot opt source               destination
""")
    r1, r2 = rs.table("filter").chains["FORWARD"].rules  # type: ignore[union-attr]
    assert r1.goto and r1.spec() == "-A FORWARD ! -d 127.0.0.0/8 -p tcp -m tcp --dport 8080 -g DOCKER"
    assert r2.header.src is not None and r2.header.src.host_str() == "127.0.0.1"
    assert r2.header.dst is None
    unresolved = [m for m in r2.matches if isinstance(m, UnresolvedAddress)]
    assert len(unresolved) == 1 and unresolved[0].name == "db.example.com" and not unresolved[0].understood
    assert "names" in rs.hidden
    assert any("db.example.com" in n.message for n in rs.notes if n.kind == "fidelity")


def test_session_with_prompts_commands_and_single_chains() -> None:
    rs = _one("""\
[root@node ~]# ip6tables -n -t nat -L KUBE-SERVICES
Chain KUBE-SERVICES (2 references)
target     prot opt source               destination
KUBE-SVC-A  tcp  --  ::/0                 fd00::1              /* default/kubernetes:https cluster IP */ tcp dpt:443

[root@node ~]# ip6tables -n -t nat -L KUBE-SVC-A
Chain KUBE-SVC-A (1 references)
target     prot opt source               destination
KUBE-SEP-B  all  --  ::/0                 ::/0                 /* default/kubernetes:https */
Das ist alles.
""")
    assert list(rs.tables) == [(6, "nat")]
    nat = rs.table("nat", 6)
    assert nat is not None
    assert nat.chains["KUBE-SERVICES"].rules[0].spec() == (
        '-A KUBE-SERVICES -d fd00::1/128 -p tcp -m comment --comment "default/kubernetes:https cluster IP" '
        "-m tcp --dport 443 -j KUBE-SVC-A")
    assert not [n for n in rs.notes if n.kind in ("inference", "duplicate")]
    # KUBE-SEP-B is jumped to but not listed: named as hidden, not silently empty.
    assert "chains" in rs.hidden
    assert any("KUBE-SEP-B" in n.message for n in rs.notes if n.kind == "partial")


def test_command_table_that_contradicts_the_chains_is_not_believed() -> None:
    rs = _one("""\
# iptables -t nat -nL
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
Chain FORWARD (policy DROP)
target     prot opt source               destination
ACCEPT     all  --  0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
""")
    assert list(rs.tables) == [(4, "filter")]
    note = next(n for n in rs.notes if n.kind == "inference")
    assert "-t nat" not in note.message and "table nat has no FORWARD chain" in note.message


def test_builtin_after_user_chain_starts_a_new_table() -> None:
    rs = _one("""\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
Chain MINE (0 references)
target     prot opt source               destination
Chain PREROUTING (policy ACCEPT)
target     prot opt source               destination
DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:10.0.0.2:8080
""")
    assert sorted(t for _, t in rs.tables) == ["filter", "nat"]
    assert rs.table("nat").chains["PREROUTING"].rules[0].spec() == (  # type: ignore[union-attr]
        "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080")


def test_unreadable_text_is_kept_and_named() -> None:
    rs = _one("""\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
REJECT     icmp --  0.0.0.0/0            0.0.0.0/0            frobnicate 7 reject-with icmp-host-prohibited
""")
    r = rs.table("filter").chains["INPUT"].rules[0]  # type: ignore[union-attr]
    assert r.target.save() == ["-j", "REJECT", "--reject-with", "icmp-host-prohibited"]  # type: ignore[union-attr]
    assert [m.understood for m in r.matches] == [False]
    assert "matches" in rs.hidden
    assert any("frobnicate 7" in n.message for n in rs.notes)


def test_bad_rows_and_empty_input_give_one_line_errors() -> None:
    with pytest.raises(InputError) as e:
        _one("hello\nno listing here\n")
    assert str(e.value).startswith("t: no iptables listing found")
    with pytest.raises(InputError) as e:
        _one("Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
             "ACCEPT all -- 10.0.0.300 0.0.0.0/0\n")
    assert str(e.value).startswith("t:3: ")


def test_cli_show_reads_a_listing_and_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("Chain INPUT (policy ACCEPT)\ntarget prot opt source destination\n"
                   "ACCEPT all -- 10.0.0.300 0.0.0.0/0\n")
    p = subprocess.run([sys.executable, "-m", "iptexplain", "show", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and f"{bad}:3:" in p.stderr
    p = subprocess.run([sys.executable, "-m", "iptexplain", "show", str(FIX / "seed-blog-listing.txt")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "iptexplain", "show", "--format", "save",
                        str(FIX / "seed-blog-listing.txt")], capture_output=True, text=True)
    assert p.returncode == 2  # forced format: the text is not an iptables-save dump


@pytest.mark.parametrize("line,table,chain,family,numeric,verbose", [
    ("[root@h ~]# iptables -t nat -nL", "nat", None, 4, True, False),
    ("$ sudo iptables -nvL --line-numbers -t mangle", "mangle", None, 4, True, True),
    ("# ip6tables -L INPUT -n", None, "INPUT", 6, True, False),
    ("root@x:~# iptables-legacy -Lnv -tnat", "nat", None, 4, True, True),
    ("/ # iptables   --list", None, None, 4, False, False),
])
def test_commands(line: str, table, chain, family, numeric, verbose) -> None:
    c = parse_command(line, 1)
    assert c and c is not True
    assert (c.table, c.chain, c.family, c.numeric, c.verbose) == (table, chain, family, numeric, verbose)  # type: ignore[union-attr]


@pytest.mark.parametrize("line", ["# iptables -A INPUT -j DROP", "iptables-save > x", "# iptables -S"])
def test_other_commands_are_not_listings(line: str) -> None:
    assert parse_command(line, 1) is False


def test_words_keep_comments_and_quotes_whole() -> None:
    assert split_listing_words('ctstate NEW /* a  b */ LOG flags 0 level 4 prefix "x y "') == [
        "ctstate", "NEW", "/* a  b */", "LOG", "flags", "0", "level", "4", "prefix", '"x y "']


# ---------------------------------------------------------------------------------------------
# The -L face of each module: read_listing(listing(m)) == m, for -n and for names.
#
# Each sample is a rule in iptables-save's canonical form (what the kernel would give back), so
# the identity is exact on the save text.

SAMPLES: dict[str, list[str]] = {
    "tcp": ["-p tcp -m tcp --sport 1024:65535 ! --dport 22", "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN",
            "-p tcp -m tcp ! --tcp-flags SYN,RST SYN", "-p tcp -m tcp --dport 8080 --tcp-option 2"],
    "udp": ["-p udp -m udp --sport 53", "-p udp -m udp ! --dport 67:68"],
    "icmp": ["-p icmp -m icmp --icmp-type 8", "-p icmp -m icmp ! --icmp-type 3/4", "-p icmp -m icmp --icmp-type 13",
             "-p icmp -m icmp --icmp-type any"],
    "multiport": ["-p tcp -m multiport --dports 80,443,8000:8080", "-p udp -m multiport ! --sports 53,123",
                  "-p tcp -m multiport --ports 22"],
    "state": ["-m state --state RELATED,ESTABLISHED", "-m state ! --state INVALID"],
    "conntrack": ["-m conntrack --ctstate NEW,DNAT", "-m conntrack ! --ctstate INVALID --ctproto tcp "
                  "--ctorigdst 10.0.0.0/8 ! --ctorigdstport 80 --ctstatus ASSURED --ctexpire 10:20 --ctdir REPLY"],
    "addrtype": ["-m addrtype --dst-type LOCAL", "-m addrtype ! --src-type LOCAL,BROADCAST --limit-iface-in"],
    "comment": ['-m comment --comment "kubernetes service portals"', "-m comment --comment x"],
    "mark": ["-m mark --mark 0x4000/0x4000", "-m mark ! --mark 0x1"],
    "MARK": ["-j MARK --set-xmark 0x4000/0x4000", "-j MARK --set-xmark 0x1/0xffffffff",
             "-j MARK --set-xmark 0x0/0xffffbfff", "-j MARK --set-xmark 0x10/0x0", "-j MARK --set-xmark 0x1/0xf"],
    "DNAT": ["-p tcp -j DNAT --to-destination 172.17.0.6:9525", "-j DNAT --to-destination 10.0.0.1-10.0.0.9 --random --persistent"],
    "SNAT": ["-p tcp -j SNAT --to-source 192.0.2.1:1024-2048 --random-fully"],
    "MASQUERADE": ["-j MASQUERADE", "-p tcp -j MASQUERADE --to-ports 1024-65535 --random"],
    "REDIRECT": ["-p tcp -j REDIRECT --to-ports 8080"],
    "REJECT": ["-j REJECT --reject-with icmp-port-unreachable", "-p tcp -j REJECT --reject-with tcp-reset"],
    "LOG": ['-j LOG --log-prefix "net-fw DROP " --log-level 6', "-j LOG --log-tcp-options --log-uid",
            '-j LOG --log-prefix "[UFW BLOCK] "'],
    "limit": ["-m limit --limit 3/min --limit-burst 10", "-m limit --limit 1/sec"],
    "hashlimit": ["-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 10 --hashlimit-mode srcip,dstport "
                  "--hashlimit-name (not-listed) --hashlimit-htable-expire 10000",
                  "-m hashlimit --hashlimit-above 100/min --hashlimit-burst 5 --hashlimit-name (not-listed) "
                  "--hashlimit-srcmask 24"],
    "recent": ["-m recent --set --name DEFAULT --mask 255.255.255.255 --rsource",
               "-m recent ! --update --seconds 60 --reap --hitcount 4 --rttl --name SSH --mask 255.255.255.0 --rdest"],
    "mac": ["-m mac --mac-source 00:11:22:aa:bb:cc", "-m mac ! --mac-source 02:00:00:00:00:01"],
    "owner": ["-m owner --uid-owner 1000", "-m owner ! --socket-exists --gid-owner 10-20 --suppl-groups"],
    "iprange": ["-m iprange --src-range 10.0.0.1-10.0.0.9", "-m iprange ! --dst-range 192.0.2.1-192.0.2.3"],
    "length": ["-m length --length 200", "-m length ! --length 0:64"],
    "statistic": ["-m statistic --mode random --probability 0.33333333349",
                  "-m statistic --mode nth ! --every 3 --packet 1"],
    "sctp": ["-p sctp -m sctp --dport 50000", "-p sctp -m sctp ! --sport 1:1024"],
    "helper": ["-m helper --helper ftp", "-m helper ! --helper sip"],
    "connlimit": ["-m connlimit --connlimit-above 10 --connlimit-mask 32 --connlimit-saddr",
                  "-m connlimit --connlimit-upto 5 --connlimit-mask 24 --connlimit-daddr"],
    "physdev": ["-m physdev --physdev-is-bridged", "-m physdev ! --physdev-in eth0 --physdev-is-out"],
    "pkttype": ["-m pkttype --pkt-type broadcast", "-m pkttype ! --pkt-type multicast"],
    "connmark": ["-m connmark --mark 0x1/0xff", "-m connmark ! --mark 0x4"],
    "set": ["-m set --match-set f2b-postfix src", "-m set ! --match-set KUBE-X dst,dst --return-nomatch"],
    "rpfilter": ["-m rpfilter --loose --validmark", "-m rpfilter --invert"],
    "tcpmss": ["-p tcp -m tcpmss --mss 1:500", "-p tcp -m tcpmss ! --mss 1400"],
    "nfacct": ["-m nfacct --nfacct-name http-in"],
    "icmp6": ["-p ipv6-icmp -m icmp6 --icmpv6-type 128", "-p ipv6-icmp -m icmp6 ! --icmpv6-type 1/4"],
    "hl": ["-m hl --hl-eq 255", "-m hl ! --hl-eq 1", "-m hl --hl-lt 5"],
    "ttl": ["-m ttl --ttl-gt 64", "-m ttl ! --ttl-eq 1"],
    "rt": ["-m rt --rt-type 0", "-m rt ! --rt-segsleft 1:5 --rt-len 8"],
    "CONNMARK": ["-j CONNMARK --set-xmark 0x1/0xffffffff", "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
                 "-j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff", "-j CONNMARK --set-xmark 0x0/0xfffffffe"],
    "NFLOG": ["-j NFLOG --nflog-prefix x --nflog-group 2", '-j NFLOG --nflog-prefix "a b" --nflog-threshold 10'],
    "CT": ["-j CT --notrack", "-j CT --zone 3", "-j CT --ctevents new,destroy"],
    "NOTRACK": ["-j NOTRACK"],
    "TRACE": ["-j TRACE"],
    "TCPMSS": ["-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
               "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400"],
    "CHECKSUM": ["-j CHECKSUM --checksum-fill"],
    "SET": ["-j SET --add-set blocked src --exist --timeout 60", "-j SET --del-set blocked src,dst"],
    "NFQUEUE": ["-j NFQUEUE --queue-num 3 --queue-bypass", "-j NFQUEUE --queue-balance 0:3 --queue-cpu-fanout"],
    "NETMAP": ["-j NETMAP --to 10.1.0.0/16"],
    "AUDIT": ["-j AUDIT --type accept"],
    "CLASSIFY": ["-j CLASSIFY --set-class 1:10"],
    "CONNSECMARK": ["-j CONNSECMARK --save", "-j CONNSECMARK --restore"],
    "DSCP": ["-j DSCP --set-dscp 0x2e"],
    "HL": ["-j HL --hl-set 64", "-j HL --hl-dec 1"],
    "TTL": ["-j TTL --ttl-set 64", "-j TTL --ttl-inc 2"],
    "SECMARK": ["-j SECMARK --selctx system_u:object_r:http_packet_t:s0"],
    "SYNPROXY": ["-p tcp -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460"],
    "TEE": ["-j TEE --gateway 192.0.2.1", "-j TEE --gateway 192.0.2.1 --oif eth1"],
    "TOS": ["-j TOS --set-tos 0x10/0x3f", "-j TOS --set-tos 0x00/0xe1"],
    "TPROXY": ["-p tcp -j TPROXY --on-port 3128 --on-ip 0.0.0.0 --tproxy-mark 0x1/0x1"],
    "ah": ["-p ah -m ah --ahspi 500", "-p ah -m ah ! --ahspi 1:100"],
    "esp": ["-p esp -m esp --espspi 500", "-p esp -m esp ! --espspi 1:100"],
    "frag": ["-m frag --fragid 5 --fragfirst", "-m frag ! --fragid 1:10 --fraglen 8 --fragmore"],
    "ecn": ["-p tcp -m ecn --ecn-tcp-ece", "-p tcp -m ecn ! --ecn-tcp-cwr --ecn-ip-ect 1"],
    "quota": ["-m quota --quota 1000000"],
    "cpu": ["-m cpu --cpu 2", "-m cpu ! --cpu 0"],
    "cgroup": ["-m cgroup --cgroup 10", "-m cgroup ! --path /user.slice"],
    "socket": ["-m socket --transparent --nowildcard"],
    "dscp": ["-m dscp --dscp 0x2e", "-m dscp ! --dscp 0x00"],
    "tos": ["-m tos --tos 0x10/0x3f", "-m tos ! --tos 0x08/0xff"],
    "connbytes": ["-m connbytes --connbytes 10000:20000 --connbytes-mode bytes --connbytes-dir both",
                  "-m connbytes ! --connbytes 100 --connbytes-mode packets --connbytes-dir original"],
    "policy": ["-m policy --dir in --pol ipsec --reqid 1 --proto esp",
               "-m policy --dir out --pol ipsec --strict --mode tunnel --tunnel-dst 192.0.2.1 --next --proto ah"],
    "DNPT": ["-j DNPT --src-pfx fd00::/64 --dst-pfx 2001:db8::/64"],
    "SNPT": ["-j SNPT --src-pfx 2001:db8::/64 --dst-pfx fd00::/64"],
    "ECN": ["-p tcp -j ECN --ecn-tcp-remove", "-p tcp -j ECN --ecn-tcp-ece 1"],
    "IDLETIMER": ["-j IDLETIMER --timeout 60 --label idle"],
    "cluster": ["-m cluster --cluster-total-nodes 2 --cluster-local-nodemask 0x00000001 --cluster-hash-seed 0xdeadbeef"],
    "ipcomp": ["-p ipcomp -m ipcomp --ipcompspi 10"],
    "mh": ["-p mh -m mh --mh-type 5", "-p mh -m mh ! --mh-type 1:3"],
    "realm": ["-m realm --realm 0x10", "-m realm ! --realm 0x1/0xff"],
    "ipv6header": ["-m ipv6header --header ipv6-route,ipv6-frag", "-m ipv6header ! --header esp --soft"],
    "dccp": ["-p dccp -m dccp --dport 5004", "-p dccp -m dccp ! --sport 1:1024"],
    "devgroup": ["-m devgroup --src-group 0x1", "-m devgroup ! --dst-group 0x2/0xff"],
    "u32": ['-m u32 --u32 "0x0>>0x16&0x3c@0xc&0xffffff00=0xa0b0c00"', '-m u32 ! --u32 "0x6&0xff=0x11&&0x0>>0x16&0x3c@0x0>>0x10=0x35:0x36"'],
    "string": ['-m string --string "GET /admin" --algo bm --to 100', '-m string ! --hex-string "|0d0a|" --algo kmp --icase'],
    "time": ["-m time --timestart 08:00:00 --timestop 17:30:00 --weekdays Mon,Tue,Wed,Thu,Fri",
             "-m time --timestart 22:00:00 --timestop 06:00:00 --monthdays 1,11,22 --datestart 2024-01-01T00:00:00 --datestop 2025-01-01T00:00:00 --kerneltz --contiguous"],
}
# Modules whose -L face is not written yet; rows using them are kept as not-understood text.
NO_FACE_YET: set[str] = set()
# Modules iptables prints nothing for: a listing cannot show them at all (a known loss of -L).
INVISIBLE = {"eui64"}
# Targets with no print function in iptables: the target column says everything.
NO_PRINT = {"standard"}


def _ext_of(sample: str, name: str):
    spec = parse_rulespec(split_args(sample))
    if spec.target is not None and (spec.target.name == name or getattr(spec.target, "spelled", "") == name):
        return spec, spec.target
    return spec, next(m for m in spec.matches if m.name == name)


def _roundtrip(name: str, sample: str, numeric: bool, family: int = 4) -> None:
    spec, ext = _ext_of(sample, name)
    family = ext.family or family
    proto = spec.header.proto
    text = ext.listing(numeric, family=family, proto=proto)
    is_target = ext is spec.target
    if is_target:
        goto, matches, target, unread, _ = read_row_tail(text, ext.spelled or ext.name, family, proto)
        assert not unread and not matches, (text, unread)
        assert target.save() == ext.save(), text
    else:
        goto, matches, target, unread, _ = read_row_tail(text, "", family, proto)
        assert not unread, (text, unread)
        assert [m.save() for m in matches] == [ext.save()], text


ROUNDTRIPS = [(n, s) for n, ss in SAMPLES.items() for s in ss]


@pytest.mark.parametrize("name,sample", ROUNDTRIPS, ids=[f"{n}:{s}" for n, s in ROUNDTRIPS])
@pytest.mark.parametrize("numeric", [True, False], ids=["n", "names"])
def test_listing_face_roundtrip(name: str, sample: str, numeric: bool) -> None:
    _roundtrip(name, sample, numeric)


def test_every_module_has_a_listing_face_and_a_sample() -> None:
    load_all()
    classes = {c for c in list(MATCHES.values()) + list(TARGETS.values())}
    missing_face = sorted(c.name for c in classes if c.name not in NO_PRINT and not c.has_listing_face())
    assert set(missing_face) == NO_FACE_YET, f"modules without a -L face: {missing_face}"
    missing_sample = sorted(c.name for c in classes
                            if c.name not in NO_PRINT | NO_FACE_YET | INVISIBLE and c.name not in SAMPLES)
    assert not missing_sample, f"modules without a round-trip sample: {missing_sample}"


@pytest.mark.parametrize("text,expect", [
    ("tcp dpt:9525", "-m tcp --dport 9525"),
    ("tcp spts:1024:65535 dpt:!22 flags:0x17/0x02", "-m tcp --sport 1024:65535 ! --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN"),
    ("tcpflags: 0x17/0x02", "-m tcp --tcp-flags FIN,SYN,RST,ACK SYN"),  # iptables 1.4
    ("tcp dpt:6136flags: 0x17/0x02", "-m tcp --dport 6136 --tcp-flags FIN,SYN,RST,ACK SYN"),  # iptables 1.4
    ("tcp flags:FIN,SYN,RST,ACK/SYN", "-m tcp --tcp-flags FIN,SYN,RST,ACK SYN"),
    ("icmptype 3 code 4", "-m icmp --icmp-type 3/4"),
    ("icmp echo-request", "-m icmp --icmp-type 8"),
    ("! ctstate NEW ctstate ESTABLISHED", "-m conntrack ! --ctstate NEW -m conntrack --ctstate ESTABLISHED"),
    ("ADDRTYPE match dst-type LOCAL", "-m addrtype --dst-type LOCAL"),
    ("multiport dports  !80,443", "-m multiport ! --dports 80,443"),
])
def test_real_tails(text: str, expect: str) -> None:
    goto, matches, target, unread, _ = read_row_tail(text, "", 4, "tcp" if "tcp" in text or "multiport" in text else "icmp")
    assert not unread
    assert " ".join(w for m in matches for w in m.save()) == expect


@pytest.mark.parametrize("text,target,expect", [
    ("to:172.17.0.6:9525", "DNAT", "-j DNAT --to-destination 172.17.0.6:9525"),
    ("masq ports: 1024-65535 random-fully", "MASQUERADE", "-j MASQUERADE --to-ports 1024-65535 --random-fully"),
    ("MARK set 0x4000", "MARK", "-j MARK --set-xmark 0x4000/0xffffffff"),
    ("MARK or 0x4000", "MARK", "-j MARK --set-xmark 0x4000/0x4000"),
    ('LOG flags 0 level 4 prefix "IN DROP: "', "LOG", '-j LOG --log-prefix "IN DROP: "'),
    ('LOG level info tcp-options prefix "a"', "LOG", "-j LOG --log-prefix a --log-level 6 --log-tcp-options"),
    ("reject-with icmp6-port-unreachable", "REJECT", "-j REJECT --reject-with icmp6-port-unreachable"),
    ("redir ports 3128", "REDIRECT", "-j REDIRECT --to-ports 3128"),
    ("CT helper amanda", "CT", "-j CT --helper amanda"),
    ("NOTRACK", "CT", "-j NOTRACK"),  # iptables 1.8: target column CT, text NOTRACK
])
def test_real_target_tails(text: str, target: str, expect: str) -> None:
    goto, matches, t, unread, _ = read_row_tail(text, target, 4, "tcp")
    assert not unread and not matches
    assert " ".join(t.save()) == expect


def test_parse_text_forced_listing_format() -> None:
    text = (FIX / "seed-blog-listing.txt").read_text()
    assert parse_text(text, "seed", fmt="listing").format == "listing"


def test_family_from_ipv6_icmp_when_every_address_is_anywhere() -> None:
    rs = _one("""\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
ACCEPT     ipv6-icmp --  anywhere             anywhere             ipv6-icmp echo-request
""")
    assert list(rs.tables) == [(6, "filter")]
    assert rs.table("filter", 6).chains["INPUT"].rules[0].spec() == (  # type: ignore[union-attr]
        "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT")


def test_piped_listing_is_flagged_partial() -> None:
    rs = _one("""\
$ sudo iptables -t nat -nL | grep -A3 DOCKER
Chain DOCKER (2 references)
target     prot opt source               destination
RETURN     all  --  0.0.0.0/0            0.0.0.0/0
""")
    assert list(rs.tables) == [(4, "nat")]
    assert "chains" in rs.hidden
    assert any("piped" in n.message for n in rs.notes)


def test_invisible_modules_print_nothing() -> None:
    """eui64 has no print function: -L cannot show it, and the reader cannot guess it."""
    spec = parse_rulespec(split_args("-m eui64 -j DROP"), 6)
    assert spec.matches[0].listing(True, family=6) == ""


def test_unseen_tells_the_tracer_what_a_rule_may_hide(seed: Ruleset) -> None:
    nat = seed.table("nat")
    assert nat is not None
    ret = nat.chains["DOCKER"].rules[0]  # really `-i docker0 -j RETURN`, listed as a bare RETURN
    assert seed.unseen(ret) == {"interfaces"}
    save = load(str(FIX / "seed-docker.v4.save"))
    assert save.unseen(save.table("nat").chains["DOCKER"].rules[0]) == frozenset()  # type: ignore[union-attr]
    rs = _one("""\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination
    0     0 DROP       all  --  *      *       db.example.com       0.0.0.0/0
""")
    assert rs.unseen(rs.table("filter").chains["INPUT"].rules[0]) == {"address"}  # type: ignore[union-attr]


def test_listing_quoted_in_a_reply() -> None:
    rs = _one("""\
On Monday you wrote:
> # iptables -t nat -nL POSTROUTING
> Chain POSTROUTING (policy ACCEPT)
> target     prot opt source               destination
> MASQUERADE  all  --  172.17.0.0/16        0.0.0.0/0
""")
    assert rs.table("nat").chains["POSTROUTING"].rules[0].spec() == (  # type: ignore[union-attr]
        "-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE")


@pytest.mark.parametrize("path", [FIX / "seed-blog-listing.txt"] + sorted(LFIX.glob("pastes/*"))
                         + sorted(LFIX.glob("docker/*.vL")) + sorted(LFIX.glob("generated/*.n*L")),
                         ids=lambda p: Path(p).name)
def test_detect_format_finds_listings(path: Path) -> None:
    text = Path(path).read_text()
    want = "save" if re.search(r"^\*(filter|nat)\s*$", text, re.M) else "listing"  # a session with a dump too
    assert detect_format(text) == want


def test_detect_format_quoted_listing() -> None:
    assert detect_format("> Chain INPUT (policy ACCEPT)\n> target prot opt source destination\n") == "listing"


def test_rows_wrapped_inside_a_comment_are_joined() -> None:
    rs = _one("""\
Chain KUBE-SERVICES (2 references)
target     prot opt source               destination
KUBE-NODEPORTS  all  --  0.0.0.0/0            0.0.0.0/0            /* kubernetes service nodeports; NOTE: this must be the
last rule in this chain */ ADDRTYPE match dst-type LOCAL
RETURN     all  --  0.0.0.0/0            0.0.0.0/0
""", table="nat")
    r1, r2 = rs.table("nat").chains["KUBE-SERVICES"].rules  # type: ignore[union-attr]
    assert r1.matches[0].text == "kubernetes service nodeports; NOTE: this must be the last rule in this chain"
    assert r1.matches[1].name == "addrtype"
    assert r2.target_name == "RETURN"
    assert any(n.kind == "repair" and "wrapped" in n.message for n in rs.notes)


# The TUM chair's published listings anonymize MACs (rows from iptables-Ln-2016-03-16_13-53-28).
TUM_MAC_ROWS = """Chain INPUT (policy ACCEPT)
target     prot opt source               destination
mac_0      all  --  0.0.0.0/0            0.0.0.0/0

Chain mac_0 (1 references)
target     prot opt source               destination
RETURN     all  --  131.159.74.67        0.0.0.0/0            MAC XX:XX:XX:XX:XX:XX
RETURN     all  --  131.159.74.67        0.0.0.0/0            MAC XX:XX:XX:XX:XX:XX
DROP       all  --  131.159.74.67        0.0.0.0/0
RETURN     all  --  80.81.193.175        0.0.0.0/0            MAC 00:1B:21:3A:4F:5C
"""


def _anonymized(rs: Ruleset) -> list[str]:
    return [n.message for n in rs.notes if n.kind == "anonymized"]


def test_listing_notes_anonymized_macs_as_the_save_reader_does() -> None:
    rs = parse_text(TUM_MAC_ROWS, "tum.nL")
    assert rs.format == "listing"
    (msg,) = _anonymized(rs)
    assert "XX:XX:XX:XX:XX:XX" in msg and msg.endswith("(2 rule(s), first at line 7)")
    # the same rules as iptables-save text: the same note, word for word but for the line
    save = parse_text("*filter\n:INPUT ACCEPT [0:0]\n:mac_0 - [0:0]\n-A INPUT -j mac_0\n"
                      "-A mac_0 -s 131.159.74.67/32 -m mac --mac-source XX:XX:XX:XX:XX:XX -j RETURN\n"
                      "-A mac_0 -s 131.159.74.67/32 -m mac --mac-source XX:XX:XX:XX:XX:XX -j RETURN\n"
                      "COMMIT\n", "tum.save")
    (smsg,) = _anonymized(save)
    assert smsg.split(" (")[0] == msg.split(" (")[0]
    # a real MAC alone: no note
    assert not _anonymized(parse_text(TUM_MAC_ROWS.replace("XX:XX:XX:XX:XX:XX", "00:1B:21:3A:4F:5D"), "real.nL"))
    # a table listed twice is read once, and its MACs counted once
    twice = parse_text(TUM_MAC_ROWS + "\n" + TUM_MAC_ROWS, "twice.nL")
    assert _anonymized(twice)[0].endswith("(2 rule(s), first at line 7)")


@pytest.mark.skipif(not CORPUS.exists(), reason="the shared corpus is not on this machine")
def test_tum_listings_note_anonymized_macs() -> None:
    d = CORPUS / "net-network"
    stem = "nn__configs_chair_for_Network_Architectures_and_Services__iptables"
    snap = "2016-03-16_13-53-28"
    counts = []
    for path in (f"{stem}-save-{snap}.v4.save", f"{stem}-Lnv-{snap}.v4.nvL", f"{stem}-Ln-{snap}.v4.nL"):
        (msg,) = _anonymized(load(str(d / path)))
        counts.append(re.search(r"\((\d+) rule\(s\)", msg).group(1))
    assert len(set(counts)) == 1 and int(counts[0]) > 1000, counts
