"""Chat messages -> one KoGPT2 chat prompt.

Format of the KoGPT2 chatbot: ``<usr>`` question ``<unused1>`` label ``<sys>`` answer ``</s>``
per turn; the prompt ends after the last user turn's ``<sys>`` so the model writes the answer.

The turn format comes from ``kogpt2.chat`` so the server and ``kogpt2 chat`` cannot drift apart.
"""

from __future__ import annotations

from typing import Sequence

from kogpt2.chat import EOS, SYS, format_prompt, plain_text


def render_chat(messages: Sequence[tuple[str, str]], label: str = "0") -> str:
    """Render ``(role, content)`` pairs; system/developer text goes first, as plain context.

    Args:
        messages: roles ``system``/``developer``/``user``/``assistant``; the last one should be a user turn.
        label: the sentiment slot of every turn (KoGPT2 chat uses ``0`` neutral, ``1`` negative, ``2`` positive).

    Returns:
        The prompt, ending in ``<sys>`` when the last message is a user turn.
    """
    parts: list[str] = []
    for role, content in messages:
        content = plain_text(content).strip()  # spelled-out <usr>/<sys>/</s> cannot forge a turn
        if role in ("system", "developer"):
            parts.append(content)
        elif role == "user":
            parts.append(format_prompt(content, label))
        elif parts and parts[-1].endswith(SYS):
            parts[-1] += f"{content}{EOS}"
        else:  # an assistant turn with no question before it
            parts.append(f"{SYS}{content}{EOS}")
    return "".join(parts)
