"""The listing rows of networks, pools and volumes are their models' fields, in order, so that
`--json` prints the same from a row as from a model; and the listings import no pydantic."""
from __future__ import annotations

import subprocess
import sys

import libvirt

from virtops.ops import rows
from virtops.ops.network import NetworkInfo
from virtops.ops.pool import PoolInfo
from virtops.ops.volume import VolumeInfo


def test_rows_carry_their_models_fields_in_order():
    conn = libvirt.open("test:///default")  # its stock objects: network default, pool default-pool
    pool = conn.storagePoolLookupByName("default-pool")
    if "rows-a.img" not in pool.listVolumes():
        pool.createXML("<volume><name>rows-a.img</name><capacity>1048576</capacity></volume>", 0)
    for row, model in ((rows.network_rows(conn)[0], NetworkInfo), (rows.pool_rows(conn)[0], PoolInfo),
                       (rows.volume_rows(conn, pool)[0], VolumeInfo)):
        assert list(row) == list(model.model_fields), model.__name__
        assert model(**row).model_dump() == row


def test_listing_commands_import_no_pydantic():
    code = ("import sys; from virtops.cli import net, pool, vol; from virtops.ops import rows; "
            "from virtops.daemon import lookups; sys.exit('pydantic' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
