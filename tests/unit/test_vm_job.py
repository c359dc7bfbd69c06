"""The job a VM's page shows (ops/migrate.job_under_way): libvirt's job statistics as a person reads
them, whoever started the job. A stand-in domain answers jobStats as libvirt 9.0 does."""
from __future__ import annotations

import libvirt

from virtops.ops.migrate import job_under_way


class Domain:
    def __init__(self, stats=None, error=False):
        self.stats, self.error = stats, error

    def jobStats(self, flags):  # noqa: N802 - libvirt's name
        if self.error:
            raise libvirt.libvirtError("Domain not found")
        return self.stats


def test_a_move_under_way_is_its_memory_phase_with_bytes_done_of_total():
    stats = {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED, "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
             "time_elapsed": 12_345, "memory_total": 200 << 20, "memory_processed": 50 << 20,
             "disk_total": 0, "disk_processed": 0}
    assert job_under_way(Domain(stats)) == {"operation": "move", "elapsed_s": 12.3, "progress": {
        "phase": "memory", "processed": 50 << 20, "total": 200 << 20, "elapsed_s": 12.345}}


def test_copied_disks_come_first():
    stats = {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED, "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
             "time_elapsed": 1000, "memory_total": 200, "memory_processed": 0, "disk_total": 80, "disk_processed": 20}
    assert job_under_way(Domain(stats))["progress"]["phase"] == "disks"


def test_no_job_a_completed_one_or_no_domain_is_none():
    assert job_under_way(Domain({"type": libvirt.VIR_DOMAIN_JOB_NONE})) is None
    assert job_under_way(Domain({"type": libvirt.VIR_DOMAIN_JOB_COMPLETED, "time_elapsed": 5})) is None
    assert job_under_way(Domain(error=True)) is None


def test_a_job_without_figures_or_of_an_unknown_operation_still_says_it_runs():
    assert job_under_way(Domain({"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED, "operation": 999, "time_elapsed": 2000})) == {
        "operation": "job", "elapsed_s": 2.0, "progress": None}
