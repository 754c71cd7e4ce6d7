"""Prompt text as token ids, and the filler text of generated tokens (``blis serve``).

There is no real tokenizer: a prompt's tokens are its whitespace-separated words, each
word's id a stable hash of it (CRC-32), so prompts that share leading words share KV blocks
in the simulator's prefix cache as they would on a server. A prompt that is exactly
``Token count: N`` (what BLIS's and ``blis observe``'s real-mode clients send) stands for N
tokens of unknown content: N fresh ids that nothing else shares. Chat messages count their
``content`` only (roles and a chat template add nothing).

Generated tokens are deterministic filler: token k (from 0) is ``FILLER[k % len(FILLER)]``,
one short word with a leading space.
"""

from __future__ import annotations

import re
import zlib
from typing import Optional

import numpy as np

# BLIS's real-mode prompt: N tokens whose content does not matter.
_TOKEN_COUNT = re.compile(r"\s*Token count:\s*(\d{1,9})\s*")

# Ids of word tokens are CRC-32 values (< 2^32); fresh ids start above them so the two never meet.
FRESH_BASE = 1 << 40

# The longest prompt accepted (tokens): "Token count: N" allocates N ids.
MAX_PROMPT_TOKENS = 1_000_000

FILLER = (" the", " cat", " sat", " on", " a", " mat", " and", " then", " it", " ran")


def filler_text(start: int, count: int) -> str:
    """The text of generated tokens ``start .. start + count - 1``."""
    n = len(FILLER)
    return "".join(FILLER[k % n] for k in range(start, start + count))


def word_ids(text: str) -> list[int]:
    """Token ids of a text: one per whitespace-separated word, its CRC-32."""
    crc = zlib.crc32
    return [crc(w.encode("utf-8", "surrogatepass")) for w in text.split()]


def token_count_prompt(text: str) -> Optional[int]:
    """N when ``text`` is exactly ``Token count: N`` (surrounding whitespace allowed), else None."""
    m = _TOKEN_COUNT.fullmatch(text)
    return int(m.group(1)) if m else None


class TokenIds:
    """Token ids for prompts and outputs; fresh ids come from one counter (never repeated)."""

    def __init__(self) -> None:
        self._next = FRESH_BASE

    def fresh(self, n: int) -> np.ndarray:
        """``n`` ids no other token has (an output, or a prompt of unknown content)."""
        start = self._next
        self._next += n
        return np.arange(start, start + n, dtype=np.int64)

    def text(self, text: str) -> np.ndarray:
        """A prompt text's ids: ``Token count: N`` as N fresh ids, otherwise one id per word.
        Raises ValueError for more than ``MAX_PROMPT_TOKENS``."""
        n = token_count_prompt(text)
        if n is not None:
            if n > MAX_PROMPT_TOKENS:
                raise ValueError(f"Token count: {n} is more than the {MAX_PROMPT_TOKENS} tokens a prompt may have")
            return self.fresh(n)
        return np.array(word_ids(text), dtype=np.int64)
