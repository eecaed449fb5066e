#!/usr/bin/env python3
"""Every relative link and #anchor in the documentation resolves, offline.

  links.py [FILE...]
      Checks README.md and docs/*.md (or the FILEs given): each link [text](target) outside
      code whose target is not a URL must name a file or directory that exists, relative to
      the file it is in; an #anchor must be a heading of the Markdown file it points to (the
      file itself for a bare #anchor), as GitHub makes anchors from headings. Prints every
      broken link with its file and line, and fails if there is one.

GitHub's anchors: the heading's text as rendered (link targets, backticks and emphasis
markers dropped), lowercased; every character that is not a letter, digit, `_`, `-` or space
removed; each space turned into `-`; a repeated anchor gets `-1`, `-2`, ... appended.
"""

import glob
import os
import re
import sys
from functools import lru_cache

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title"): the target up to a space or the closing parenthesis.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                if fence is None:
                    fence = m.group(1)
                elif m.group(1) == fence:
                    fence = None
                continue
            if fence is None:
                yield number, line.rstrip("\n")


def slug(heading):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in "_- ")
    return text.replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(path):
    seen = {}
    found = set()
    for _, line in prose_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def check(path):
    problems = []
    for number, line in prose_lines(path):
        text = INLINE_CODE.sub("", line)
        for m in LINK.finditer(text):
            target = m.group(1)
            if URL.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            where = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(where):
                problems.append(f"{path}:{number}: {target}: {where} does not exist")
                continue
            if not anchor:
                continue
            if not where.endswith(".md") or os.path.isdir(where):
                problems.append(f"{path}:{number}: {target}: an #anchor into {where}, which is no Markdown file")
            elif anchor not in anchors(where):
                near = sorted(a for a in anchors(where) if a[:4] == anchor[:4])
                hint = f" (its anchors include {', '.join(near[:5])})" if near else ""
                problems.append(f"{path}:{number}: {target}: {where} has no heading #{anchor}{hint}")
    return problems


def main(files):
    files = files or ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True))
    problems = [p for f in files for p in check(f)]
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print(f"{len(files)} files checked, {len(problems)} broken links")
    return not problems


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
