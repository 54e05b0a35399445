"""What a distiller preprocesses with, in every shipped config.

A ``KDASDistiller`` without its own ``data_preprocessor`` uses the
student's; but mmengine's Runner gives every model that sets none the
config's top-level ``data_preprocessor`` variable first. The two must agree,
or a distiller trains at other multi-scale steps than its config shows (the
demo once took three steps per iteration that way).
"""
import glob
import os.path as osp

import pytest
from conftest import ROOT
from mmengine.config import Config

# the model configs (a study config of configs/kd_study/ names model
# configs: tests/test_study)
CONFIGS = sorted(
    c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in c and 'kd_study' not in osp.relpath(c, ROOT))


def _plain(value):
    if isinstance(value, dict):  # mmengine may add the scope of a base
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(c, ROOT) for c in CONFIGS])
def test_distiller_preprocesses_as_its_student(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    if model.get('type') != 'KDASDistiller' or model.get(
            'data_preprocessor') is not None:
        return
    runner_given = cfg.get('data_preprocessor')
    student = model.student.get('data_preprocessor')
    if runner_given is not None and student is not None:
        assert _plain(runner_given) == _plain(student)
