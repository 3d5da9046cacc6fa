import pytest
import torch

from tpri.configs.schema import register_configs

register_configs()  # conf/ extends the typed schemas stored in Hydra's ConfigStore


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests are small: one thread is faster and keeps CI's 2 cores free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
