"""What the platform holds about a person, gathered for export and erasure.

Each app registers what it holds (``register``) when it starts; accounts itself depends on no other app.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts.models import User


@dataclass
class Section:
    name: str
    export: Callable[[User], Any]
    erase: Callable[[User], None] | None = None
    # Returns a reason the account cannot be deleted yet, or None.
    check: Callable[[User], str | None] | None = None


_sections: dict[str, Section] = {}


def register(section: Section) -> None:
    _sections[section.name] = section


def sections() -> list[Section]:
    return list(_sections.values())
