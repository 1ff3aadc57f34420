#!/usr/bin/env bash
# System packages the test suite needs.  The kernel lab (tests/kernel_lab.py) checks
# iptexplain against the real netfilter with these tools: iptables (nft and legacy
# backends, xtables-monitor), ipset, conntrack, iproute2; nftables gives `nft -a`, used to
# name rules xtables-monitor 1.8.9 cannot print (ip6tables rules with a port match).
# Idempotent and quiet: installs only what is missing (apt-get update only then).
# Needs root, as CI has.
set -euo pipefail

pkgs=(iptables ipset conntrack iproute2 kmod tmux nftables)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-system-deps: installing ${missing[*]}"
  log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi
