"""The dashboard link a job prints: given only when the page is the dashboard."""

from __future__ import annotations

from dasknmf.jobs.cluster import DASHBOARD_INSTALL, connect, dashboard_link
from dasknmf.jobs.config import ClusterConfig
from tests.cluster.test_processes import assert_is_the_dashboard


def test_a_local_cluster_links_a_dashboard_that_answers():
    config = ClusterConfig(
        type="local", n_workers=1, threads_per_worker=1, processes=False, dashboard=True
    )
    with connect(config) as info:
        assert info.dashboard_link and info.note is None
        assert_is_the_dashboard(info.dashboard_link)


class SchedulerWithoutBokeh:
    """What a client tells of a scheduler whose host lacks bokeh (its page is a notice)."""

    dashboard_link = "http://127.0.0.1:8787/status"

    def __init__(self, services: dict[str, int]) -> None:
        self.services = services

    def scheduler_info(self, n_workers: int = -1) -> dict:
        return {"services": self.services}

    def get_versions(self, packages: list[str]) -> dict:
        return {"scheduler": {"packages": dict.fromkeys(packages)}}


def test_without_bokeh_the_install_command_replaces_the_link():
    link, note = dashboard_link(SchedulerWithoutBokeh({"dashboard": 8787}))
    assert link is None
    assert "bokeh is not installed where the scheduler runs" in note
    assert DASHBOARD_INSTALL == "pip install 'dasknmf[dashboard]'" and DASHBOARD_INSTALL in note
    # A scheduler started without a dashboard: nothing to link, nothing to install.
    assert dashboard_link(SchedulerWithoutBokeh({})) == (None, None)
