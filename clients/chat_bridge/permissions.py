"""Who may do what: Twitch badge roles, the nick allow-list, cooldowns, a global limit, length and word filters."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .config import LimitConfig, PermissionConfig
from .irc import IrcMessage, fold_nick
from .ratelimit import Clock, Cooldowns, SlidingWindow

AVATAR_COMMANDS = frozenset({"emote", "say", "intensity", "reset", "preset"})  # the ones that change the avatar
ROLE_WORDS = {"broadcaster": "the broadcaster", "moderator": "moderators", "vip": "VIPs",
              "subscriber": "subscribers", "allowed": "allowed users", "viewer": "everyone"}


def roles_of(message: IrcMessage, allow: frozenset[str]) -> frozenset[str]:
    """Roles of a PRIVMSG's sender. Badges count only when the server sent IRCv3 tags (Twitch); anyone else
    is a plain viewer unless the allow-list names them."""
    roles = {"viewer"}
    if message.nick and fold_nick(message.nick) in allow:
        roles.add("allowed")
    tags = message.tags
    if message.has_tags and tags:
        badges = {item.partition("/")[0] for item in tags.get("badges", "").split(",") if item}
        if "broadcaster" in badges:
            roles.add("broadcaster")
        if "moderator" in badges or tags.get("mod") == "1" or tags.get("user-type") == "mod":
            roles.add("moderator")
        if "vip" in badges or tags.get("vip") == "1":
            roles.add("vip")
        if badges & {"subscriber", "founder"} or tags.get("subscriber") == "1":
            roles.add("subscriber")
    return frozenset(roles)


@dataclass(frozen=True)
class Refusal:
    reason: str  # a short code: permission, cooldown, global, length, denied
    message: str  # the chat reply (without the "@nick")


class Policy:
    """Decides whether a command may run. `admit` takes the user's cooldown and a global token; `refund`
    returns them when the avatar could not be reached, so that an outage does not cost users their turn."""

    def __init__(self, permissions: PermissionConfig, limits: LimitConfig, clock: Clock = time.monotonic):
        self.permissions, self.limits = permissions, limits
        self.allow = frozenset(fold_nick(n) for n in permissions.allow)
        self._cooldowns = Cooldowns(limits.user_cooldown_s, clock)
        self._global = SlidingWindow(limits.global_limit, limits.global_window_s, clock)
        self._deny = [re.compile(r"(?<!\w)" + r"\W*".join(map(re.escape, w.casefold().split())) + r"(?!\w)")
                      for w in limits.deny_words if w.strip()]

    def permission(self, roles: frozenset[str], command: str) -> Refusal | None:
        allowed = self.permissions.roles_for(command)
        if roles & set(allowed):
            return None
        who = ", ".join(ROLE_WORDS[r] for r in allowed) or "nobody"
        return Refusal("permission", f"sorry, that command is for {who}")

    def admit(self, user: str, roles: frozenset[str], command: str, text: str = "") -> Refusal | None:
        if refusal := self.permission(roles, command):
            return refusal
        if command not in AVATAR_COMMANDS:
            return None
        if len(text) > self.limits.max_length:
            return Refusal("length", f"too long (max {self.limits.max_length} characters)")
        if self.denied(text):
            return Refusal("denied", "that instruction is not allowed here")
        exempt = bool(roles & set(self.limits.cooldown_exempt))
        key = fold_nick(user)
        if not exempt and (wait := self._cooldowns.remaining(key)) > 0:
            return Refusal("cooldown", f"cooldown, try again in {max(1.0, wait):.0f}s")
        if not exempt and not self._global.try_take():
            wait = self._global.wait_time()
            return Refusal("global", f"too many commands, try again in {max(1.0, wait):.0f}s")
        if not exempt:
            self._cooldowns.mark(key)
        return None

    def refund(self, user: str, roles: frozenset[str]) -> None:
        if not roles & set(self.limits.cooldown_exempt):
            self._cooldowns.forget(fold_nick(user))
            self._global.give_back()

    def denied(self, text: str) -> bool:
        folded = text.casefold()
        return any(pattern.search(folded) for pattern in self._deny)
