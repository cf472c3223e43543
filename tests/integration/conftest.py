"""Fixtures of the integration tests that need more than the shared server (see each module)."""

from tests.integration.fence_helpers import fence_db, fence_server  # noqa: F401 (fixtures)
from tests.integration.lab_topology import topo  # noqa: F401 (fixture)
