"""Public ids: prefixed, random, base32's lower-case alphabet."""

from __future__ import annotations

import re
from collections import Counter

from core.ids import public_id_new


def test_an_id_is_its_prefix_and_twenty_base32_characters():
    for _ in range(100):
        assert re.fullmatch(r"png_[a-z2-7]{20}", public_id_new("png_"))
    assert re.fullmatch(r"bid_[a-z2-7]{8}", public_id_new("bid_", length=8))


def test_ids_do_not_repeat_and_use_every_character_about_equally():
    ids = [public_id_new("x_") for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    counts = Counter("".join(i[2:] for i in ids))  # 100 000 characters, 3 125 expected each
    assert set(counts) == set("abcdefghijklmnopqrstuvwxyz234567")
    assert all(2800 < n < 3450 for n in counts.values()), counts
