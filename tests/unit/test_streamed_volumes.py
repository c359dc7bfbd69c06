"""The pure parts of a streamed upload and download (ops/volume.py, web/security.py): pieces cut
anywhere regroup into the same aligned blocks, so a block of zeros is found whatever the browser's
piece sizes; only the volume content route escapes the body limit."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from virtops.ops.volume import _blocks
from virtops.web.api import _download_name
from virtops.web.security import is_streamed_upload


@given(st.binary(max_size=5000), st.lists(st.integers(1, 700), min_size=1), st.integers(1, 1024))
def test_pieces_regroup_into_aligned_blocks(data, cuts, size):
    pieces, at = [], 0
    for cut in cuts * (len(data) // max(sum(cuts), 1) + 1):
        if at >= len(data):
            break
        pieces.append(data[at:at + cut])
        at += cut
    blocks = list(_blocks(pieces, size))
    assert b"".join(blocks) == data
    assert all(len(block) == size for block in blocks[:-1]) and all(0 < len(block) <= size for block in blocks)


def test_only_the_volume_content_put_is_streamed():
    assert is_streamed_upload({"method": "PUT", "path": "/api/pools/p/volumes/v/content"})
    assert is_streamed_upload({"method": "PUT", "path": "/api/hosts/lab:b/pools/p/volumes/v/content"})
    assert not is_streamed_upload({"method": "POST", "path": "/api/pools/p/volumes/v/content"})
    assert not is_streamed_upload({"method": "PUT", "path": "/api/pools/p/volumes/v/content/x"})
    assert not is_streamed_upload({"method": "POST", "path": "/api/networks/xml"})


def test_a_download_s_file_name_cannot_break_its_header():
    assert _download_name('a"b\\c\u00e9\n.img') == "a_b_c__.img"
