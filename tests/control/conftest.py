import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors run several times faster on one thread than on two oversubscribed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
