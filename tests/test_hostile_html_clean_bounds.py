"""Sanitising a big HTML part (nh3) in bounded memory: HTML of very many elements is kept as text only.

nh3 builds the whole document: a 25 MB HTML mail of `<p>a</p>` grew the preparing process by 1.1 GB, about 200
bytes a tag. Each case runs in a process of its own, so its peak memory can be read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.html_clean import MAX_TAGS, clean_html

ROOT = Path(__file__).resolve().parents[1]
SIZE = 8_000_000
MAX_GROWTH = 4     # times the markup: nh3's output and a copy, at most

_CASES = {
    "paragraphs of one letter": "<p>a</p>\n",
    "line breaks": "x<br>",
    "links": '<a href="https://example.org/">a</a>',
}

_RUN = """
import json, resource, sys, time
from ingest.html_clean import clean_html
from tests.test_hostile_html_clean_bounds import SIZE, _CASES
unit = _CASES[sys.argv[1]]
markup = unit * (SIZE // len(unit))
with open("/proc/self/statm") as f:
    before = int(f.read().split()[1]) * resource.getpagesize()
start = time.perf_counter()
cleaned = clean_html(markup)
seconds = time.perf_counter() - start
# VmHWM, this image's own peak: ru_maxrss keeps the peak of the process before its exec.
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
print(json.dumps({"seconds": seconds, "growth": peak - before, "size": len(markup)}))
"""


@pytest.mark.parametrize("case", list(_CASES))
def test_big_html_is_cleaned_or_left_out_in_bounded_memory(case):
    try:
        done = subprocess.run([sys.executable, "-c", _RUN, case], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: still cleaning after 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["seconds"] < 5, result
    assert result["growth"] < MAX_GROWTH * result["size"], result


def test_html_of_many_elements_is_kept_as_text_only():
    assert clean_html("<p>a</p>" * (MAX_TAGS // 2 + 1)) is None


def test_html_with_as_many_elements_as_a_real_newsletter_is_cleaned():
    # The corpus's biggest HTML part has 7 412 tags.
    cleaned = clean_html("<div><p>a</p><img src='cid:x'></div>" * (MAX_TAGS // 10))   # five tags each
    assert cleaned is not None and cleaned.count("<p>") == MAX_TAGS // 10
