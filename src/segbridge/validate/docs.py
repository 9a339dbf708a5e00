"""Generate the rule table (docs/rules.md) from the registered rules.

usage: python -m segbridge.validate.docs > docs/rules.md
"""

from __future__ import annotations

from . import PROFILES, RULES


def rules_markdown() -> str:
    lines = [
        "# Validation rules",
        "",
        "Generated from the code by `python -m segbridge.validate.docs > docs/rules.md`; "
        "`segbridge validate FILE --profile P` runs every rule of its kind whose profile "
        "column lists P (reference rules need `--reference`).",
        "",
        "| rule | object | severity | profiles | what is checked | fix | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RULES:
        profs = "all" if set(r.profiles) == set(PROFILES) else ", ".join(sorted(r.profiles))
        extra = []
        if r.needs_reference:
            extra.append("needs --reference")
        if r.needs_pixels:
            extra.append("decodes pixels")
        what = r.summary.replace("|", "\\|") + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(f"| `{r.id}` | {r.kind} | {r.severity} | {profs} | {what} | "
                     f"{r.hint.replace('|', '/')} | {r.source} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(rules_markdown(), end="")
