"""What a README says about its module in one line: the description lists and search show."""

from __future__ import annotations


def first_paragraph(readme: str | None, limit: int = 300) -> str:
    """The README's first paragraph of prose (headings, badges, HTML and blank lines skipped),
    cut to ``limit`` characters."""
    lines: list[str] = []
    for line in (readme or "").splitlines():
        text = line.strip()
        if text.startswith(("#", "[![", "![", "<")) or (not text and not lines):
            continue
        if not text:
            break
        lines.append(text)
    paragraph = " ".join(lines)
    return paragraph if len(paragraph) <= limit else paragraph[: limit - 1].rstrip() + "…"
