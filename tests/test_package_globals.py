"""What ``import mmseg_kdas`` changes outside the package, and only that."""
import mmengine.registry as root_registries
from mmengine.fileio.backends.registry_utils import (backends,
                                                     prefix_to_backends)
from mmengine.registry import Registry
from mmengine.runner import CheckpointLoader

import mmseg_kdas
from mmseg_kdas.engine import (CPUDistributedDataParallel,
                               load_from_local_weights_only)
from mmseg_kdas.engine.checkpoint import AtomicLocalBackend


def test_the_documented_global_changes_are_the_only_ones():
    # mmengine's local checkpoint loader, replaced for the whole process
    assert CheckpointLoader._schemes[''] is load_from_local_weights_only
    # mmengine's local file backend, replaced for the whole process
    assert prefix_to_backends[''] is AtomicLocalBackend
    assert backends['local'] is AtomicLocalBackend
    others = {
        name: cls
        for name, cls in {**backends, **prefix_to_backends}.items()
        if cls.__module__.startswith('mmseg_kdas')
    }
    assert set(others.values()) == {AtomicLocalBackend}
    # mmengine's root registries get exactly one entry of the plugin
    entries = {
        (name, key)
        for name, registry in vars(root_registries).items()
        if isinstance(registry, Registry)
        for key, cls in registry.module_dict.items()
        if (getattr(cls, '__module__', None) or '').startswith('mmseg_kdas')
    }
    assert entries == {('MODEL_WRAPPERS', 'CPUDistributedDataParallel')}
    assert root_registries.MODEL_WRAPPERS.get(
        'CPUDistributedDataParallel') is CPUDistributedDataParallel
    # both are listed where a user of the package reads
    doc = mmseg_kdas.__doc__
    assert 'load_from_local_weights_only' in doc
    assert 'AtomicLocalBackend' in doc
    assert 'CPUDistributedDataParallel' in doc and 'MODEL_WRAPPERS' in doc
