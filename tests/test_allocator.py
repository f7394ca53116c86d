"""The allocator setting takes effect on glibc and is harmless to call twice."""

import platform

import pytest

from anatomica.allocator import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_keep_freed_memory_on_glibc():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
