"""A lossy network of its own: a network namespace with a veth pair (ICE needs a non-loopback address) whose
UDP output loses a share of packets at random (nftables `numgen random`; `tc netem` is not available on every
kernel). Root only. Names and addresses are drawn per use, and the namespace is deleted on exit, whatever
happened inside.

    with LossyNamespace(loss_pct=5) as net:
        subprocess.run(net.exec(["python", "-m", "realtime", "serve", "--host", net.server_ip]))
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess


def unavailable() -> str | None:
    """Why a lossy namespace cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: iproute2, nftables)"
    probe = f"avprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class LossyNamespace:
    def __init__(self, loss_pct: float = 5.0):
        tag = secrets.token_hex(3)
        self.name = f"avloss{tag}"
        self.links = (f"ava{tag}", f"avb{tag}")  # interface names: at most 15 characters
        a, b = secrets.randbelow(200) + 20, secrets.randbelow(250) + 1
        self.server_ip, self.client_ip = f"10.{a}.{b}.1", f"10.{a}.{b}.2"
        self.loss_pct = loss_pct

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def exec(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def __enter__(self) -> LossyNamespace:
        a, b = self.links
        self._ip("netns", "add", self.name)
        try:
            self._ip("-n", self.name, "link", "set", "lo", "up")
            self._ip("link", "add", a, "type", "veth", "peer", "name", b)
            for link, address in ((a, self.server_ip), (b, self.client_ip)):
                self._ip("link", "set", link, "netns", self.name)
                self._ip("-n", self.name, "addr", "add", f"{address}/24", "dev", link)
                self._ip("-n", self.name, "link", "set", link, "up")
            if self.loss_pct > 0:
                nft = self.exec(["nft"])
                for rule in (["add", "table", "inet", "loss"],
                             ["add", "chain", "inet", "loss", "out", "{ type filter hook output priority 0; }"],
                             ["add", "rule", "inet", "loss", "out", "meta", "l4proto", "udp", "numgen", "random",
                              "mod", "100", "<", str(int(round(self.loss_pct))), "drop"]):
                    subprocess.run(nft + rule, check=True, capture_output=True, text=True)
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)  # takes its veth pair along

    def __exit__(self, *exc) -> None:
        self.delete()
