"""The OpenMMLab metafiles of the config folders: complete and consistent."""
import os.path as osp

import pytest
import yaml
from conftest import ROOT

FOLDERS = ['configs/kdas', 'configs/kd_baselines']
METADATA = ('Training Data', 'Batch Size', 'Architecture',
            'Training Resources', 'Teacher', 'Student')


@pytest.mark.parametrize('folder', FOLDERS)
def test_metafile(folder):
    with open(osp.join(ROOT, folder, 'metafile.yaml')) as f:
        meta = yaml.safe_load(f)
    collections = {c['Name']: c for c in meta['Collections']}
    for collection in collections.values():
        assert collection['Paper']['URL'].startswith('https://')
        assert osp.isfile(osp.join(ROOT, collection['README']))
    names = [m['Name'] for m in meta['Models']]
    assert len(set(names)) == len(names)
    for model in meta['Models']:
        assert model['In Collection'] in collections, model['Name']
        assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
        assert set(METADATA) <= set(model['Metadata']), model['Name']
        assert model['Metadata']['Training Resources'] == '2 CPU cores'
        for role in ('Teacher', 'Student'):
            config = model['Metadata'][role]['Config']
            assert osp.isfile(osp.join(ROOT, config)), config
        for result in model.get('Results', []):  # measured figures only
            assert {'Task', 'Dataset', 'Metrics'} <= set(result)


@pytest.mark.parametrize('folder', FOLDERS)
def test_readme_has_the_openmmlab_sections(folder):
    with open(osp.join(ROOT, folder, 'README.md')) as f:
        text = f.read()
    heads = [line for line in text.splitlines() if line.startswith('## ')]
    assert heads == ['## Description', '## Usage', '## Results',
                     '## Citation']
