#!/usr/bin/env python3
"""Prints the fenced code block that follows the marker `<!-- test: NAME -->` in a Markdown file,
so that tests run the documentation's own commands and programs rather than copies of them.

Usage: tests/clients/readme_block.py FILE NAME      (exit 1 when the marker or block is missing)
"""
import sys


def block(path, name):
    lines = open(path, encoding="utf-8").read().splitlines()
    marker = f"<!-- test: {name} -->"
    for i, line in enumerate(lines):
        if line.strip() == marker:
            start = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if start is None:
                break
            end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                sys.exit(f"{path}: the block after {marker} is not closed")
            return "\n".join(lines[start + 1:end]) + "\n"
    sys.exit(f"{path}: no code block after {marker}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.stdout.write(block(sys.argv[1], sys.argv[2]))
