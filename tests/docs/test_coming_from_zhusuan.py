"""The ports on the "coming from ZhuSuan" page run as written.

Every ```python block of `docs/coming_from_zhusuan.md` is executed (the ZhuSuan originals are
```py blocks and are not). A block starting with "# (continues" runs in the namespace of the block
before it; any other block runs in a fresh namespace, so a missing import fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "coming_from_zhusuan.md"


def _chains() -> list[list[str]]:
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)
    chains: list[list[str]] = []
    for block in blocks:
        if block.startswith("# (continues") and chains:
            chains[-1].append(block)
        else:
            chains.append([block])
    return chains


CHAINS = _chains()


def test_the_page_has_ports():
    assert len(CHAINS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("chain", CHAINS, ids=[chain[0].split("\n")[-2][:30] for chain in CHAINS])
def test_port_runs(chain, capsys):
    namespace: dict = {"__name__": "port"}
    for block in chain:
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert capsys.readouterr().out          # every port prints its results
