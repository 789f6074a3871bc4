"""Every bad config value is refused in one line naming the field, before anything is
loaded or compiled (the cases: tests/bad_input_cases.py; `python tests/bad_input_cases.py`
runs them all through the command line)."""

import pytest
from bad_input_cases import CONFIG_CASES
from helpers import load_config

from gax import config_base, errors
from gax.training import train


@pytest.mark.parametrize("name,overrides,message", CONFIG_CASES,
                         ids=[f"{n}:{','.join(o)}" for n, o, _ in CONFIG_CASES])
def test_a_bad_value_is_one_clear_error(name, overrides, message):
  config = load_config(name)
  config_base.apply_overrides(config, overrides)
  with pytest.raises((errors.ConfigError, errors.DataError)) as raised:
    train.create_run(config)
  assert message in str(raised.value)
  assert "\n" not in str(raised.value)
