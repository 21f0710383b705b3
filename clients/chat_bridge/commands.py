"""Chat text → command: prefix, aliases and preset shortcuts (`!happy` → "look happy")."""
from __future__ import annotations

from dataclasses import dataclass

from .config import CommandConfig, Preset
from .irc import strip_formatting


@dataclass(frozen=True)
class ChatCommand:
    name: str  # one of config.COMMANDS
    argument: str = ""  # the rest of the line, formatting stripped
    word: str = ""  # what the user typed after the prefix (for replies: "!e" vs "!emote")
    preset: Preset | None = None


class CommandParser:
    def __init__(self, config: CommandConfig):
        self.config = config
        self._words = {name: name for name in ("emote", "say", "intensity", "reset", "mood", "help")}
        self._words.update({alias.lower(): target for alias, target in config.aliases.items()})

    def parse(self, text: str) -> ChatCommand | None:
        """The command in a chat line, or None when the line is not addressed to the bridge."""
        text = strip_formatting(text).strip()
        prefix = self.config.prefix
        if not text.startswith(prefix):
            return None
        word, _, argument = text[len(prefix):].partition(" ")
        word, argument = word.lower(), " ".join(argument.split())
        if word in self._words:
            return ChatCommand(self._words[word], argument, word)
        if word in self.config.presets:
            return ChatCommand("preset", argument, word, self.config.presets[word])
        return None  # another bot's command: stay quiet

    def help_text(self) -> str:
        p = self.config.prefix
        text = f"{p}emote <text>, {p}say <text>, {p}intensity <0-1>, {p}reset, {p}mood"
        if self.config.presets:
            text += " | presets: " + " ".join(p + name for name in sorted(self.config.presets))
        return text
