"""Skills (Flue): know-how an agent loads only when it needs it.

A skill is a folder with a ``SKILL.md`` whose frontmatter names and describes it, and any
other files it refers to::

    skills/review-checklist/
        SKILL.md          ---
                          name: review-checklist
                          description: How to review a pull request, step by step.
                          ---
                          1. Read the description first. ...
        examples.md

``skills=[skill("skills/review-checklist")]`` (or ``skills="skills"``, every skill folder
in it) gives the agent a ``load_skill`` tool whose description lists each skill's name
and description; the model loads one's instructions on demand (``load_skill(name)``)
and reads its other files (``load_skill(name, file="examples.md")``). Skills are read
when the agent is defined (a bad frontmatter is a `DefinitionError`), from paths relative
to the working directory (the code root, in Lambda: a ``skills/`` folder at the project
root ships with the agents).

Frontmatter lines are ``key: value`` (a value may be quoted); ``name`` (1-64 characters
of lower-case letters, digits and ``-``) and ``description`` are required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent_runtime.errors import DefinitionError

SKILL_FILE = "SKILL.md"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
#: The most of a skill's instructions or file `load_skill` returns at once.
SKILL_TEXT_MAX = 50_000


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    #: The instructions: SKILL.md without its frontmatter.
    body: str
    root: Path
    #: Its other files, relative to its folder, sorted.
    files: tuple[str, ...] = ()

    def read(self, file: str) -> str:
        """One of its files as text; `DefinitionError`-free: raises `ValueError` with a reason."""
        if file not in self.files:
            known = ", ".join(self.files) or "none"
            raise ValueError(f"skill {self.name} has no file {file!r} (files: {known})")
        return (self.root / file).read_text(encoding="utf-8", errors="replace")


def _frontmatter(text: str, where: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise DefinitionError("skills", f"{where}: SKILL.md must start with a --- frontmatter block")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        raise DefinitionError("skills", f"{where}: the frontmatter block is not closed with ---") from None
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise DefinitionError("skills", f"{where}: frontmatter line {line.strip()!r} is not 'key: value'")
        fields[key.strip()] = value.strip().strip("'\"")
    return fields, "\n".join(lines[end + 1 :]).strip()


def skill(path: str | Path) -> Skill:
    """The skill in folder `path`."""
    root = Path(path)
    manifest = root / SKILL_FILE
    if not manifest.is_file():
        raise DefinitionError("skills", f"{root}: no {SKILL_FILE} there")
    fields, body = _frontmatter(manifest.read_text(encoding="utf-8"), str(manifest))
    name, description = fields.get("name", ""), fields.get("description", "")
    if not _NAME.match(name):
        raise DefinitionError("skills", f"{manifest}: name must match {_NAME.pattern}, got {name!r}")
    if not description:
        raise DefinitionError("skills", f"{manifest}: a description is required (the model reads it)")
    files = tuple(
        sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and p.name != SKILL_FILE and "__pycache__" not in p.parts and not p.name.startswith(".")
        )
    )
    return Skill(name=name, description=description, body=body, root=root, files=files)


def skills_in(folder: str | Path) -> list[Skill]:
    """Every skill folder (one holding a SKILL.md) directly in `folder`, by name."""
    base = Path(folder)
    if not base.is_dir():
        raise DefinitionError("skills", f"skills folder {str(folder)!r} does not exist")
    return sorted((skill(p) for p in base.iterdir() if (p / SKILL_FILE).is_file()), key=lambda s: s.name)


def check_skills(value: object) -> tuple[Skill, ...]:
    """An agent's ``skills``: a folder of skills, or a list of `skill(...)` and folders."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str | Path) else value
    if not isinstance(items, list | tuple):
        raise DefinitionError("skills", 'expected skill(...), a list of them, or a folder like "skills"')
    found: list[Skill] = []
    for item in items:
        if isinstance(item, Skill):
            found.append(item)
        elif isinstance(item, str | Path):
            found.extend(skills_in(item) if not (Path(item) / SKILL_FILE).is_file() else [skill(item)])
        else:
            raise DefinitionError("skills", f"{item!r} is not a skill(...) or a folder")
    names = [s.name for s in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError("skills", f"duplicate skill name(s): {', '.join(duplicates)}")
    return tuple(found)


__all__ = ["SKILL_FILE", "SKILL_TEXT_MAX", "Skill", "check_skills", "skill", "skills_in"]
