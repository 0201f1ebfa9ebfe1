"""The `classifier` detector: a model trained by this project (`make train-guard`) that scores text for injected
instructions (tool results, arguments) and poisoned tool definitions.

Two stages keep it inside the latency budget. Stage 1 is a handful of cue rules that join the engine's single
multi-pattern pass: words that mark text speaking to the AI or giving it orders (override verbs, second person with
a modal, AI/assistant/instructions, imperative verbs at a sentence start, role tags), in English, French, Spanish,
German, Portuguese, Italian, Russian, Chinese, Japanese and Korean. Stage 2 scores only the windows around those
cues with the learned model (`textmodel`), so a 64 KB result without cues costs nothing beyond the shared pass.
Tool definitions are small and read as trusted instructions, so every string of one is scored, and the scores are
cached by a hash of the text: a `tools/list` repeated every session is scored once.

The weights ship in `bastion/guard/models/` and load with `allow_pickle=False`; a damaged or missing file makes
every scan raise, which the engine turns into a `detector_error` finding (fail closed, per `failure_mode`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Final

from bastion.guard.config import ClassifierConfig
from bastion.guard.detector import Direction, Hit, Rule, ScanContext
from bastion.guard.detectors.textmodel import WINDOW_CHARS, ModelError, TextModel, load_model, window_bounds
from bastion.guard.finding import Finding, Severity

MODEL_FILE: Final = "injection-ngram-v1.npz"
"""The shipped weights, under `bastion/guard/models/`."""
CACHE_SIZE: Final = 4096
"""Tool-definition strings whose score is remembered (by SHA-256 of the text)."""

_CUES_EN: Final = (
    r"\b(?:ai|llm|chatbot|chatgpt|gpt-?\d?|claude|gemini|copilot|assistant|jailbreak|unrestricted|unfiltered"
    r"|system prompt|instructions|do anything now)\b"
    r"|\b(?:ignore|disregard|forget|bypass|override)\s+(?:all|any|the|your|my|previous|prior|above|everything"
    r"|these|those|earlier|what)\b"
    r"|\byou(?:'re|\s+are\s+now|\s+must|\s+should|\s+will\s+now|\s+have\s+to|\s+need\s+to|\s+can\s+now)\b"
    r"|\byour\s+(?:task|goal|job|reply|response|answer|output|instructions?|role|mission|rules)\b"
    r"|(?:^|[.!?:>\n\x00])\s*(?:please\s+)?(?:send|forward|e-?mail|transfer|pay|wire|reveal|disclose|leak|tell"
    r"|reply|respond|visit|click|do not|don't|never|write|translate|summari[sz]e|repeat|say|answer|describe"
    r"|explain|generate|provide|include|insert|append|share|post|upload)\b"
    r"|<\s*/?\s*(?:important|information|instructions?|system|secret|hidden)\b"
)
_CUES_LATIN: Final = (
    # French, Spanish, Portuguese, Italian, German: override verbs, "instructions", "you must", "send", "answer".
    # ASCII only, so RE2 can find them; `.` stands for one accented letter.
    r"\b(?:ignorez|ignorer|ignora|ignorar|ignoriere|oublie[rz]?|olvida|esque|dimentica|vergiss|umgehe|anweisung"
    r"|instrucci|istruzion|vous\s+devez|tu\s+dois|debes|voc.\s+deve|devi|du\s+musst|sie\s+m.ssen|envoie[rz]?"
    r"|env.a|antworte|r.ponds|responde)"
)
_CUES_OTHER_WORDS: Final = (
    # Russian, Chinese, Japanese, Korean.
    "\u0433\u043d\u043e\u0440\u0438\u0440",  # игнорир(уй)
    "\u0430\u0431\u0443\u0434\u044c",  # (з)абудь
    "\u043d\u0441\u0442\u0440\u0443\u043a\u0446",  # (и)нструкц
    "\u0434\u043e\u043b\u0436\u0435\u043d",  # должен
    "\u0442\u043f\u0440\u0430\u0432\u044c",  # (o)tprav' = send
    "\u5ffd\u7565",  # 忽略
    "\u5fd8\u8bb0",  # 忘记
    "\u6307\u4ee4",  # 指令
    "\u63d0\u793a",  # 提示
    "\u4f60\u5fc5\u987b",  # 你必须
    "\u4f60\u73b0\u5728",  # 你现在
    "\u7121\u8996",  # 無視
    "\u6307\u793a",  # 指示
    "\u3042\u306a\u305f\u306f",  # あなたは
    "\u30d7\u30ed\u30f3\u30d7\u30c8",  # プロンプト
    "\ubb34\uc2dc",  # 무시
    "\uc9c0\uc2dc",  # 지시
)


def _escaped(word: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == " ") else f"\\u{ord(ch):04x}" for ch in word)


def _utf8(word: str) -> str:
    return "".join(
        ch if ch.isascii() and ch.isalnum() else "".join(f"\\x{b:02x}" for b in ch.encode()) for ch in word
    )


CUE_RULES: Final[tuple[Rule, ...]] = (
    # One rule for the ASCII cues: each rule the pass reports costs one more scan of the text.
    Rule(
        type="cue",
        pattern=f"{_CUES_EN}|{_CUES_LATIN}",
        flags=0x2 | 0x8,  # re.IGNORECASE | re.MULTILINE
        prefilter="(?im)" + _CUES_EN + "|" + _CUES_LATIN.replace(".", ".{1,2}"),
    ),
    Rule(
        type="cue",
        pattern="(?:" + "|".join(_escaped(w) for w in _CUES_OTHER_WORDS) + ")",
        flags=0x2,
        prefilter="(?i)(?:" + "|".join(_utf8(w) for w in _CUES_OTHER_WORDS) + ")",
    ),
)
"""Stage 1: where the model looks in results and arguments. A cue alone is never a finding."""


def default_model_path() -> Path:
    return Path(str(resources.files("bastion.guard") / "models" / MODEL_FILE))


class ClassifierDetector:
    """Learned injection and tool-poisoning detector; see the module docstring for the two stages."""

    name = "classifier"

    def __init__(self, config: ClassifierConfig | None = None, *, model_path: Path | None = None) -> None:
        self.config = config if config is not None else ClassifierConfig()
        self.rules: tuple[Rule, ...] = CUE_RULES
        self._model: TextModel | None = None
        self._error: ModelError | None = None
        try:
            self._model = load_model(model_path if model_path is not None else default_model_path())
        except ModelError as exc:
            self._error = exc  # reported on every scan, so the engine fails closed
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model(self) -> TextModel:
        """The loaded model.

        Raises:
            ModelError: the weights could not be loaded.
        """
        if self._model is None:
            raise self._error if self._error is not None else ModelError("no model")
        return self._model

    def wants_every_string(self, direction: Direction) -> bool:
        return direction is Direction.TOOL

    def check(self, text: str, context: ScanContext) -> list[Finding]:
        """Tool definitions: every string is scored whole (cached)."""
        if context.direction is not Direction.TOOL or len(text.strip()) < self.config.min_chars:
            return []
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            score = self._cache.get(key)
            if score is not None:
                self._cache.move_to_end(key)
        if score is None:
            score = self.model.score(text)
            with self._lock:
                self._cache[key] = score
                if len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return self._findings([(score, 0, len(text))], context, "poisoning", self.config.tool_threshold)

    @property
    def whole_chars(self) -> int:
        """A payload this small is one window: scored whole (`check_whole`), cue or not."""
        return WINDOW_CHARS

    def check_whole(self, text: str, context: ScanContext, *, hit: bool) -> list[Finding]:
        """Results and arguments of at most one window in all (a prompt, a short argument or result): scored whole,
        so an instruction worded without any cue still counts. One window costs one model pass (~0.1 ms). With a
        cue (`hit`: a cue rule matched in the engine's pass) the bar is `threshold`, as for any cue window; without
        one there is less evidence, so it is `whole_threshold`."""
        if context.direction is Direction.TOOL or _words(text) < self.config.whole_min_words:
            return []
        threshold = self.config.threshold if hit else self.config.whole_threshold
        return self._findings([(self.model.score(text), 0, len(text))], context, "injection", threshold)

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Results and arguments: score the windows around the cues."""
        if context.direction is Direction.TOOL or context.whole:
            return []  # `check` scores a definition's strings, `check_whole` a small payload
        return self._findings(
            score_near(self.model, text, [h.match.span() for h in hits]), context, "injection"
        )

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """Standalone use (no engine pass): every window is scored."""
        if context.direction is Direction.TOOL:
            return self.check(text, context)
        windows = window_bounds(text)
        scores = self.model.score_windows(text, windows)
        return self._findings(
            [(float(p), s, e) for p, (s, e) in zip(scores, windows, strict=True)], context, "injection"
        )

    def _findings(
        self,
        scored: list[tuple[float, int, int]],
        context: ScanContext,
        type_: str,
        threshold: float | None = None,
    ) -> list[Finding]:
        if not scored:
            return []
        best, start, end = max(scored, key=lambda t: t[0])
        if best < (self.config.threshold if threshold is None else threshold):
            return []
        severity = Severity.HIGH if best >= self.config.high_threshold else Severity.MEDIUM
        return [
            Finding(
                detector=self.name,
                type=type_,
                severity=severity,
                confidence=round(best, 3),
                path=context.path,
                start=start,
                end=end,
            )
        ]


_WORD: Final = re.compile(r"\S*[^\W\d_]\S*")
_IDEOGRAPH: Final = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def _words(text: str) -> int:
    """Words of `text`: whitespace-separated tokens with a letter, plus one per two CJK characters (written
    without spaces)."""
    return len(_WORD.findall(text)) + len(_IDEOGRAPH.findall(text)) // 2


def score_near(model: TextModel, text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[float, int, int]]:
    """(probability, start, end) of the windows around `spans`: one window of `WINDOW_CHARS` centred on each cue
    (overlapping ones merged), all scored in one feature pass over the windows joined by newlines."""
    if not spans:
        return []
    n = len(text)
    half = WINDOW_CHARS // 2
    windows: list[list[int]] = []
    for s, e in sorted(spans):
        lo, hi = max(0, s - half), min(n, e + half)
        if windows and lo < windows[-1][1] and hi - windows[-1][0] <= WINDOW_CHARS:
            windows[-1][1] = max(windows[-1][1], hi)
        elif not windows or hi > windows[-1][1]:
            windows.append([lo, hi])
    joined: list[str] = []
    inside: list[tuple[int, int]] = []
    offset = 0
    for lo, hi in windows:
        joined.append(text[lo:hi])
        inside.append((offset, offset + hi - lo))
        offset += hi - lo + 1
    scores = model.score_windows("\n".join(joined), inside)
    return [(float(p), lo, hi) for p, (lo, hi) in zip(scores, windows, strict=True)]
