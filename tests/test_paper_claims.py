"""What the book says the paper recommends matches the paper's text.

Chapter 7 ends with the paper's eleven recommendations (section 6 "Conclusion" of Scherr et
al. 2018), in the paper's order, each with its key phrase and a pointer into the book.
The paper's text lives beside the clone, in ``../shared/paper/scherr2018.md``.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "07_improving_training.ipynb"
PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "scherr2018.md"

#: The key phrase of each of the paper's recommendations, in the paper's order.
KEY_PHRASES = [
    "one channel output U-Net",
    "class imbalance",
    "instead of boundaries",
    "erosion and dilation",
    "Do not use training data augmentation naively",
    "test-time augmentation",
    "do not rely on them solely",
    "additional training data",
    "training process hyperparameters",
    "a-priori",
    "other encoders",
]

PAPER_HEADING = "## The paper's eleven recommendations"
BOOK_HEADING = "## This book's own lessons"


def _plain(text: str) -> str:
    """Lower case, no Markdown emphasis, single spaces (items wrap over several lines)."""
    return re.sub(r"\s+", " ", text.replace("**", "").replace("*", "")).strip().lower()


def _numbered_items(text: str) -> list[tuple[int, str]]:
    """(number, text) of the numbered list items in ``text``, continuation lines included."""
    items = []
    for line in text.splitlines():
        match = re.match(r"^(\d+)\.\s+(.*)$", line)
        if match:
            items.append([int(match.group(1)), match.group(2)])
        elif items and line.strip():
            items[-1][1] += " " + line.strip()
    return [(number, body) for number, body in items]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(heading) + len(heading)
    following = re.search(r"^#{1,6} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def _chapter_markdown() -> str:
    notebook = nbformat.read(CHAPTER, as_version=4)
    return "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def _paper_recommendations() -> list[tuple[int, str]]:
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not beside the clone ({PAPER}); CI has ../shared")
    text = PAPER.read_text(encoding="utf-8")
    conclusion = re.search(r"^## 6 Conclusion$(.*?)^## References", text, flags=re.MULTILINE | re.DOTALL)
    assert conclusion, "section 6 'Conclusion' not found in the paper's text"
    return _numbered_items(conclusion.group(1))


def test_chapter_7_lists_the_paper_recommendations_in_order_with_their_key_phrases():
    markdown = _chapter_markdown()
    assert PAPER_HEADING in markdown, f"chapter 7 has no section {PAPER_HEADING!r}"
    items = _numbered_items(_section(markdown, PAPER_HEADING))
    assert [number for number, _ in items] == list(range(1, 12)), "exactly eleven items, numbered 1 to 11"
    for (number, body), phrase in zip(items, KEY_PHRASES):
        assert phrase.lower() in _plain(body), f"recommendation {number} lacks the paper's phrase {phrase!r}"


def test_every_paper_recommendation_points_into_the_book_or_says_it_is_not_shown():
    items = _numbered_items(_section(_chapter_markdown(), PAPER_HEADING))
    for number, body in items:
        assert "{doc}`" in body or "does not demonstrate" in body, (
            f"recommendation {number} neither links a chapter nor says the book does not demonstrate it"
        )


def test_the_book_lessons_follow_as_a_separate_list():
    markdown = _chapter_markdown()
    assert BOOK_HEADING in markdown, f"chapter 7 has no section {BOOK_HEADING!r}"
    assert markdown.index(BOOK_HEADING) > markdown.index(PAPER_HEADING), "the book's lessons come after the paper's list"
    lessons = _plain(_section(markdown, BOOK_HEADING))
    assert "instead of boundaries" in lessons, "the book's lessons discuss recommendation 3 (borders instead of boundaries) against the records"
    assert "no clear trend" in lessons, "the lesson on losses keeps the paper's 'no clear trend' (section 3.6)"


def test_key_phrases_are_the_paper_own_words_in_section_6():
    paper_items = _paper_recommendations()
    assert [number for number, _ in paper_items] == list(range(1, 12)), "the paper's section 6 lists eleven items"
    for (number, body), phrase in zip(paper_items, KEY_PHRASES):
        assert phrase.lower() in _plain(body), f"{phrase!r} is not in the paper's recommendation {number}"
