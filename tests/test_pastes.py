"""Notes with a dump in the middle are read around the noise: prose lines that start like rule
text (a "--" separator, a JSON "[", a diff's context, "*}" of a proof script), several dumps one
after the other -- and iptables-restore's own ``-I`` is read as iptables-restore reads it."""

from __future__ import annotations

import pytest

from corpus_index import CORPUS
from iptexplain.core.errors import InputError
from iptexplain.inputs.files import load
from iptexplain.parse import parse_text

NOTES = """Docker notes
--
$ sudo docker network inspect mynet
[
    {
        "Name": "mynet",
        "Subnet": "10.0.0.0/8"
    }
]
--
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.0.0.0/8 ! -o br0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 10.0.0.1 -j ACCEPT
COMMIT
diff:
 :MYNET - [0:0]
 -A FORWARD -j MYNET
+-A FORWARD -d 193.99.144.80 -j DROP
ML_val{*
writeln ("*filter");
*}
the generator's template:
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s $WebFrnt_ipv4 -d $Log_ipv4 -j ACCEPT
COMMIT
what I load:
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 10.0.0.2 -j ACCEPT
-A FORWARD -s 10.0.0.3 -j ACCEPT
-I FORWARD -m state --state ESTABLISHED -j ACCEPT
-I FORWARD 3 -s 10.0.0.4 -j DROP
COMMIT
"""


def test_notes_around_dumps_are_skipped_and_the_last_dump_counts() -> None:
    rs = parse_text(NOTES, "notes.txt")
    fwd = rs.tables[(4, "filter")].chains["FORWARD"]
    assert [" ".join(r.save_args()) for r in fwd.rules] == [
        "-m state --state ESTABLISHED -j ACCEPT",
        "-s 10.0.0.2/32 -j ACCEPT",
        "-s 10.0.0.4/32 -j DROP",
        "-s 10.0.0.3/32 -j ACCEPT",
    ]
    assert [r.number for r in fwd.rules] == [1, 2, 3, 4]
    lines = NOTES.splitlines()
    at = {text: lines.index(text) + 1 for text in lines if text.startswith(("-A FORWARD -s 10.0.0.", "-I "))}
    assert [r.line for r in fwd.rules] == [at["-I FORWARD -m state --state ESTABLISHED -j ACCEPT"],
                                           at["-A FORWARD -s 10.0.0.2 -j ACCEPT"],
                                           at["-I FORWARD 3 -s 10.0.0.4 -j DROP"],
                                           at["-A FORWARD -s 10.0.0.3 -j ACCEPT"]]
    assert (4, "nat") in rs.tables
    assert any("left as a template" in n.message and "$WebFrnt_ipv4" in n.message for n in rs.notes)
    dup = [n for n in rs.notes if n.kind == "duplicate"]
    assert len(dup) == 1 and "tables appear again (filter (IPv4) at lines " in dup[0].message


def test_rule_text_inside_a_table_is_still_checked() -> None:
    with pytest.raises(InputError) as e:
        parse_text("*filter\n:INPUT ACCEPT [0:0]\n-- a comment\nCOMMIT\n", "t.save")
    assert str(e.value).startswith("t.save:3: ")


def test_insert_beyond_the_end_is_refused_as_iptables_restore_does() -> None:
    with pytest.raises(InputError) as e:
        parse_text("*filter\n:INPUT ACCEPT [0:0]\n-I INPUT 3 -j ACCEPT\nCOMMIT\n", "t.save")
    assert str(e.value).startswith("t.save:3: index of insertion too big")


def test_corpus_docker_notes_file_reads() -> None:
    rs = load(str(CORPUS / "listings" / "nn__configs_corny_docker__docker.txt.v4.mixed"))
    assert rs.tables[(4, "filter")].chains["FORWARD"].rules
    assert any("template" in n.message for n in rs.notes)
    assert not any("appears again" in n.message for n in rs.notes)  # one note for every repeated table


def test_no_rules_found_lists_every_format_accepted() -> None:
    with pytest.raises(InputError) as e:
        parse_text("hello\nworld\n", "x.txt")
    msg = str(e.value)
    for fmt in ("iptables-save", "ip6tables-save", "iptables -S", "-nvL listing", "nft list ruleset", "snapshot"):
        assert fmt in msg, msg
