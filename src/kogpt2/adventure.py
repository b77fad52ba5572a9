"""A Korean text adventure: the story is written by the model, steered by PPLM to the genre.

A new game assembles an opening from a genre template (``resources/adventure/*.json``), a
protagonist and a goal. Each turn the player picks a menu action (이동, 싸움, 대화, 살펴보기,
...) by number or types free text; the action becomes a sentence of the story, and the model
continues the story from the whole history (trimmed to its context window, oldest sentences
first), steered by PPLM toward the genre's bag of words, cut at the last sentence end.

Everything the game needs to continue identically is in :class:`GameState`: ``save`` writes
it as JSON, ``load`` reads it back, and every turn's seed is stored, so a loaded game goes on
exactly as the saved one would have. The engine (:class:`Adventure`) maps one input line to
one reply and knows nothing about terminals; ``kogpt2.adventure_ui`` draws it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kogpt2.errors import KoGPT2Error
from kogpt2.paths import resources_dir

SAVE_VERSION = 1
DEFAULT_SAVE = "adventure_save.json"

# ---------------------------------------------------------------------------- Korean particles

# particle -> (after a final consonant, after a vowel)
_JOSA = {"은": ("은", "는"), "는": ("은", "는"), "이": ("이", "가"), "가": ("이", "가"), "을": ("을", "를"),
         "를": ("을", "를"), "과": ("과", "와"), "와": ("과", "와"), "이다": ("이다", "다"),
         "이었다": ("이었다", "였다"), "으로": ("으로", "로")}


def josa(word: str, particle: str) -> str:
    """``word`` with the particle form its last syllable needs: ``josa("아린", "은") == "아린은"``."""
    if particle not in _JOSA:
        return word + particle
    last = word.rstrip()[-1:] or " "
    code = ord(last) - 0xAC00
    final = code % 28 if 0 <= code < 11172 else 0  # jongseong index; non-Hangul counts as a vowel
    with_final, without = _JOSA[particle]
    if particle == "으로" and final == 8:  # ㄹ takes 로
        return word + without
    return word + (with_final if final else without)


def fill(template: str, **words: str) -> str:
    """Fill ``{key}`` and ``{key:particle}`` (particle chosen by :func:`josa`) from ``words``."""
    def sub(m: re.Match) -> str:
        key, particle = m.group(1), m.group(2)
        if key not in words:
            raise KoGPT2Error(f"template field {{{key}}} is unknown; known: {', '.join(words)}")
        return josa(words[key], particle) if particle else words[key]

    return re.sub(r"\{(\w+)(?::([^}]+))?\}", sub, template)


# ---------------------------------------------------------------------------- genres

@dataclass
class Genre:
    """A genre template (``resources/adventure/<key>.json``)."""

    key: str
    name: str
    bow: str
    """The bag of words PPLM steers toward (``resources/bow/<bow>.txt``)."""
    protagonists: list[str]
    roles: list[str]
    goals: list[str]
    settings: list[str]
    openings: list[str]
    """Templates with {setting} {role} {name} {goal}."""
    actions: dict[str, list[str]]
    """Menu action -> sentences with {name}; the menu keeps this order."""

    @classmethod
    def load(cls, key: str) -> "Genre":
        f = resources_dir() / "adventure" / f"{key}.json"
        if not f.is_file():
            raise KoGPT2Error(f"unknown genre {key!r}; choose one of: {', '.join(genre_names())}")
        return cls(key=key, **json.loads(f.read_text(encoding="utf-8")))


def genre_names() -> list[str]:
    """Genres shipped in the package."""
    return sorted(p.stem for p in (resources_dir() / "adventure").glob("*.json"))


# ---------------------------------------------------------------------------- state

@dataclass
class Turn:
    """One step of the story: the player's sentence, then the model's continuation."""

    action: str
    """``opening``, a menu action, or ``free`` (typed text)."""
    player: str
    story: str
    seed: int


@dataclass
class Settings:
    """How the story is generated; saved with the game."""

    model: str | None = None
    """Model directory (None = the bundled model)."""
    use_pplm: bool = True
    max_new_tokens: int = 60
    sampling: dict[str, Any] = field(default_factory=dict)
    """``SamplingConfig`` fields over the ``pplm`` preset (seed and max_new_tokens excluded)."""
    pplm: dict[str, Any] = field(default_factory=dict)
    """``PPLMConfig`` fields."""
    seed: int = 0


@dataclass
class GameState:
    """Everything needed to show and continue a game."""

    genre: str
    protagonist: str
    role: str
    goal: str
    settings: Settings
    turns: list[Turn] = field(default_factory=list)

    def story(self, extra: str | None = None) -> str:
        """The whole story so far (plus ``extra``, the sentence of a turn being written)."""
        parts = [t.player + t.story for t in self.turns] + ([extra] if extra is not None else [])
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"version": SAVE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GameState":
        if data.get("version") != SAVE_VERSION:
            raise KoGPT2Error(f"unsupported save version {data.get('version')!r} (this kogpt2 reads version "
                              f"{SAVE_VERSION}); open it with the kogpt2 that saved it, or start a new game")
        d = {k: v for k, v in data.items() if k != "version"}
        return cls(**{**d, "settings": Settings(**d["settings"]), "turns": [Turn(**t) for t in d["turns"]]})

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "GameState":
        p = Path(path)
        if not p.is_file():
            raise KoGPT2Error(f"no saved game at {p}")
        try:
            from kogpt2.textio import read_text

            return cls.from_dict(json.loads(read_text(p, "saved game")))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise KoGPT2Error(f"{p} is not a kogpt2 adventure save ({e})") from None


# ---------------------------------------------------------------------------- text helpers

_SENTENCE_END = re.compile(r"[.!?…。][\"'”’)\]]*(?=\s|$)")


def cut_at_sentence_end(text: str) -> str:
    """``text`` up to its last sentence end (kept whole when it has none)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[:ends[-1]] if ends else text.rstrip()


def trim_to_context(text: str, tokenizer: Any, budget: int) -> str:
    """The longest suffix of whole sentences of ``text`` within ``budget`` tokens."""
    def n_tokens(s: str) -> int:
        return len(tokenizer(s, add_special_tokens=False)["input_ids"])

    if n_tokens(text) <= budget:
        return text
    for m in _SENTENCE_END.finditer(text):
        rest = text[m.end():].lstrip()
        if rest and n_tokens(rest) <= budget:
            return rest
    text = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][-budget:])
    while n_tokens(text) > budget:  # a cut byte sequence decodes to U+FFFD, which re-encodes longer
        text = text[max(1, len(text) // 10):]
    return text


def as_sentence(text: str) -> str:
    """Typed text as a story sentence (a final period added when it has no end mark)."""
    text = " ".join(text.split())
    return text if _SENTENCE_END.search(text + " ") and text[-1] in ".!?…\"'”’)]" else text + "."


# ---------------------------------------------------------------------------- the storyteller

class Storyteller:
    """Continues the story with the model (PPLM-steered to the genre's bag of words, or not)."""

    def __init__(self, settings: Settings, genre: Genre, device: str | None = None):
        from kogpt2 import pplm
        from kogpt2.generation.api import config_for, load

        self.settings = settings
        decoder, self.tokenizer = load(settings.model, device=device)
        self.decoder = decoder
        if settings.use_pplm:
            bow = pplm.load_bow(genre.bow, self.tokenizer)
            self.decoder, _ = pplm.steering_decoder(decoder.model, bow, pplm.PPLMConfig(**settings.pplm),
                                                    self.tokenizer)
        self.config = config_for(decoder, "pplm", tokenizer=self.tokenizer, max_new_tokens=settings.max_new_tokens,
                                 **settings.sampling)

    def continue_story(self, prompt: str, seed: int) -> str:
        """The continuation of ``prompt``, cut at its last sentence end."""
        from kogpt2.generation.api import generate

        budget = self.decoder.context - self.settings.max_new_tokens
        prompt = trim_to_context(prompt, self.tokenizer, budget)
        text = generate(prompt, model=self.decoder, tokenizer=self.tokenizer,
                                 config=self.config.replace(seed=seed))
        return cut_at_sentence_end(text)


# ---------------------------------------------------------------------------- the engine

@dataclass
class Reply:
    """What the game answers to one line."""

    text: str
    quit: bool = False


COMMANDS = {
    "help": ("help", "도움말", "?"), "quit": ("quit", "exit", "종료"), "save": ("save", "저장"),
    "load": ("load", "불러오기"), "undo": ("undo", "취소"), "retry": ("retry", "다시"),
    "menu": ("menu", "메뉴"), "story": ("story", "이야기"),
}
HELP = """명령 (commands):
  1, 2, ...        메뉴의 행동을 고릅니다 (pick a menu action)
  아무 문장        주인공이 할 일을 직접 씁니다 (free text: what the hero does)
  story  이야기    지금까지의 이야기 전체
  undo   취소      마지막 차례를 지웁니다
  retry  다시      마지막 이어쓰기를 다시 씁니다
  save [FILE]  저장      게임 저장 (기본 adventure_save.json)
  load [FILE]  불러오기  저장한 게임 불러오기
  help   도움말    이 도움말
  quit   종료      끝내기"""


class Adventure:
    """The game: one input line in, one :class:`Reply` out.

    Args:
        state: the game to play (see :meth:`new`).
        teller: the storyteller; built from ``state.settings`` when None.
    """

    def __init__(self, state: GameState, teller: Storyteller | None = None, device: str | None = None):
        self.state = state
        self.device = device
        self.genre = Genre.load(state.genre)
        self.teller = teller or Storyteller(state.settings, self.genre, device)

    @classmethod
    def new(cls, genre: str = "fantasy", protagonist: str | None = None, goal: str | None = None,
            settings: Settings | None = None, device: str | None = None) -> "Adventure":
        """Start a game: the opening is assembled from the genre's templates, then continued."""
        settings = settings or Settings()
        g = Genre.load(genre)
        rng = random.Random(settings.seed)
        state = GameState(genre=genre, protagonist=protagonist or rng.choice(g.protagonists),
                          role=rng.choice(g.roles), goal=goal or rng.choice(g.goals), settings=settings)
        game = cls(state, device=device)
        opening = fill(rng.choice(g.openings), setting=rng.choice(g.settings), role=state.role,
                       name=state.protagonist, goal=state.goal)
        game._play("opening", opening)
        return game

    # -------------------------------------------------------------- views

    @property
    def actions(self) -> list[str]:
        return list(self.genre.actions)

    def menu_text(self) -> str:
        items = "  ".join(f"{i}. {a}" for i, a in enumerate(self.actions, 1))
        return f"무엇을 할까요? {items}  (또는 직접 입력, help)"

    def intro_text(self) -> str:
        s = self.state
        return (f"[{self.genre.name}] 주인공: {s.protagonist} ({s.role}) / 목표: {s.goal}\n\n"
                f"{s.story()}\n\n{self.menu_text()}")

    # -------------------------------------------------------------- turns

    def _seed(self) -> int:
        return self.state.settings.seed * 1000 + len(self.state.turns)

    def _play(self, action: str, player: str) -> Turn:
        seed = self._seed()
        story = self.teller.continue_story(self.state.story(player), seed)
        turn = Turn(action=action, player=player, story=story, seed=seed)
        self.state.turns.append(turn)
        return turn

    def _action_sentence(self, action: str) -> str:
        rng = random.Random(self._seed())
        return fill(rng.choice(self.genre.actions[action]), name=self.state.protagonist)

    def handle(self, line: str) -> Reply:
        """Run one command, menu choice or free-text action."""
        line = line.strip()
        if not line:
            return Reply(self.menu_text())
        word, _, arg = line.partition(" ")
        name = next((k for k, words in COMMANDS.items() if word.lstrip("/").lower() in words), None)
        if name is not None and (not arg or name in ("save", "load")):
            return getattr(self, f"_cmd_{name}")(arg.strip())
        if line.startswith("/"):
            return Reply(f"알 수 없는 명령입니다: {word}\n{HELP}")
        if line.isdigit():
            k = int(line)
            if not 1 <= k <= len(self.actions):
                return Reply(f"메뉴 번호는 1부터 {len(self.actions)}까지입니다.\n{HELP}\n{self.menu_text()}")
            action = self.actions[k - 1]
            turn = self._play(action, self._action_sentence(action))
        else:
            turn = self._play("free", as_sentence(line))
        return Reply(f"▶ {turn.player}\n{turn.story}\n\n{self.menu_text()}")

    def _cmd_help(self, arg: str) -> Reply:
        return Reply(f"{HELP}\n\n{self.menu_text()}")

    def _cmd_quit(self, arg: str) -> Reply:
        return Reply("모험을 마칩니다. 안녕히!", quit=True)

    def _cmd_menu(self, arg: str) -> Reply:
        return Reply(self.menu_text())

    def _cmd_story(self, arg: str) -> Reply:
        return Reply(self.state.story())

    def _cmd_save(self, arg: str) -> Reply:
        try:
            p = self.state.save(arg or DEFAULT_SAVE)
        except OSError as e:
            return Reply(f"저장하지 못했습니다: {e}\n{HELP}")
        return Reply(f"저장했습니다: {p} ({len(self.state.turns)}번째 차례까지)")

    def _cmd_load(self, arg: str) -> Reply:
        try:
            state = GameState.load(arg or DEFAULT_SAVE)
        except KoGPT2Error as e:
            return Reply(f"불러오지 못했습니다: {e}\n{HELP}")
        same = state.genre == self.state.genre and state.settings == self.state.settings
        self.state = state
        if not same:
            self.genre = Genre.load(state.genre)
            self.teller = Storyteller(state.settings, self.genre, self.device)
        return Reply(f"불러왔습니다: {arg or DEFAULT_SAVE}\n\n{self.intro_text()}")

    def _cmd_undo(self, arg: str) -> Reply:
        if len(self.state.turns) <= 1:
            return Reply("되돌릴 차례가 없습니다 (첫 장면은 지울 수 없습니다).")
        turn = self.state.turns.pop()
        return Reply(f"마지막 차례를 지웠습니다: {turn.player}\n\n{self.menu_text()}")

    def _cmd_retry(self, arg: str) -> Reply:
        last = self.state.turns.pop()
        seed = last.seed + 1_000_000  # a fresh seed, stored with the turn
        story = self.teller.continue_story(self.state.story(last.player), seed)
        self.state.turns.append(Turn(action=last.action, player=last.player, story=story, seed=seed))
        return Reply(f"▶ {last.player}\n{story}\n\n{self.menu_text()}")


__all__ = ["Adventure", "GameState", "Settings", "Turn", "Genre", "Reply", "Storyteller", "genre_names", "josa",
           "fill", "cut_at_sentence_end", "trim_to_context", "as_sentence", "HELP"]
