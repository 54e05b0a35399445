"""A config as Python text, fast.

:attr:`mmengine.config.Config.pretty_text` passes the text through yapf,
about 0.3 s for one run config of the study on 2 cores: nothing beside a
training run, most of a test that writes hundreds of them. A config whose
values are all Python literals (strings, numbers, booleans, None, lists,
tuples and dicts of them: every run config of the study) is written here as
one ``key = <pprint of the value>`` per top-level key instead, which reads
back to the same dict; any other config goes through ``pretty_text``.
"""
import ast
import keyword
import pprint

from mmengine.config import Config

__all__ = ['config_text']


def _literal(text: str, value) -> bool:
    try:
        return ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def config_text(cfg: Config) -> str:
    """Python text that :meth:`Config.fromfile` reads back as ``cfg``.

    Args:
        cfg: The config.

    Returns:
        str: ``key = value`` lines (values pretty-printed at 79 columns,
        dict keys in their order) when every value is a literal that reads
        back equal, else ``cfg.pretty_text``.
    """
    lines = []
    for key, value in cfg.to_dict().items():
        text = pprint.pformat(value, width=72, sort_dicts=False)
        if (not key.isidentifier() or keyword.iskeyword(key)
                or not _literal(text, value)):
            return cfg.pretty_text
        lines.append(f'{key} = {text}')
    return '\n'.join(lines) + '\n'
