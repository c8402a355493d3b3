"""Message-id catalogues, one gettext `.po` file per language in hub/web/i18n/.

Keys are ids (`now.title`), never English sentences, so a wording change never breaks a
translation. Plurals follow each file's `Plural-Forms` header (Welsh has six forms). Keys
starting `js.` are also sent to the page for app.js. A key missing from a catalogue shows as
the key itself, which the tests look for.
"""

from __future__ import annotations

import ast
import gettext
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

I18N_DIR = Path(__file__).resolve().parent.parent / "i18n"
LANGUAGES = ("en", "cy")


@dataclass(frozen=True)
class Catalogue:
    lang: str
    messages: dict[str, list[str]]  # id -> [singular] or the plural forms
    plural: Callable[[int], int]

    def text(self, key: str, **values: object) -> str:
        forms = self.messages.get(key)
        text = forms[0] if forms and forms[0] else key
        return text.format(**values) if values else text

    def ntext(self, key: str, n: int, **values: object) -> str:
        forms = self.messages.get(key)
        if not forms:
            return key
        index = min(self.plural(n), len(forms) - 1)
        return (forms[index] or forms[-1]).format(n=n, **values)

    def js(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.messages.items() if k.startswith("js.")}


def parse_po(text: str) -> tuple[dict[str, list[str]], str]:
    """(messages, Plural-Forms expression) from the text of a .po file."""
    entries: list[dict[str, object]] = []
    current: dict[str, object] = {}
    field = None
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if not line or line.startswith("#"):
            if "msgid" in current and not line.startswith("#"):
                entries.append(current)
                current, field = {}, None
            continue
        if line.startswith('"'):
            current[field] = current[field] + ast.literal_eval(line)  # type: ignore[operator]
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid" and "msgid" in current:
            entries.append(current)
            current = {}
        field = keyword
        current[field] = ast.literal_eval(rest)
    messages: dict[str, list[str]] = {}
    plural = "n != 1"
    for entry in entries:
        key = str(entry["msgid"])
        if key == "":
            for header in str(entry.get("msgstr", "")).splitlines():
                if header.lower().startswith("plural-forms:"):
                    plural = header.split("plural=", 1)[1].rstrip(";").strip()
            continue
        if "msgid_plural" in entry:
            forms, i = [], 0
            while f"msgstr[{i}]" in entry:
                forms.append(str(entry[f"msgstr[{i}]"]))
                i += 1
            messages[key] = forms
        else:
            messages[key] = [str(entry.get("msgstr", ""))]
    return messages, plural


@cache
def catalogue(lang: str) -> Catalogue:
    if lang not in LANGUAGES:
        lang = "en"
    messages, plural = parse_po((I18N_DIR / f"{lang}.po").read_text(encoding="utf-8"))
    return Catalogue(lang, messages, gettext.c2py(plural))
