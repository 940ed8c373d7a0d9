import argparse

import pytest

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings
from prefalign.data.split import SplitSettings
from prefalign.data.synthetic import SyntheticSettings
from prefalign.errors import ConfigError
from prefalign.evaluation.evaluate import EvalSettings
from prefalign.evaluation.judge_accuracy import JudgeEvalSettings
from prefalign.report.render import ReportSettings
from prefalign.settings import to_cli_flags
from prefalign.train.base_model import BaseModelSettings
from prefalign.train.dpo import DPOSettings
from prefalign.train.reward import RewardSettings
from prefalign.train.sft import SFTSettings

ALL = [BaseModelSettings, EvalSettings, FilterSettings, NormalizeSettings, ReportSettings, SplitSettings,
       SyntheticSettings, DPOSettings, SFTSettings, RewardSettings, JudgeEvalSettings]


@pytest.mark.parametrize("cls", ALL)
def test_defaults_round_trip_through_the_flags(cls):
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    settings = cls()
    flags = to_cli_flags(settings.to_dict())
    import shlex

    assert cls.from_args(parser.parse_args(shlex.split(flags))) == settings


@pytest.mark.parametrize("cls", ALL)
def test_every_flag_has_help(cls):
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "(default:" in action.help, action.dest


def test_non_default_values_round_trip():
    import shlex

    parser = argparse.ArgumentParser()
    DPOSettings.add_arguments(parser)
    settings = DPOSettings(beta=0.25, loss_type=["sigmoid", "sft"], use_lora=False, precompute_ref_log_probs=True)
    parsed = DPOSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict()))))
    assert parsed == settings
    parser = argparse.ArgumentParser()
    BaseModelSettings.add_arguments(parser)
    settings = BaseModelSettings(source="pretrained", name_or_path="some dir/with space", revision=None)
    assert BaseModelSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict())))) == settings


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: SFTSettings(learning_rate=-1.0), "learning_rate"),
        (lambda: SFTSettings(max_steps=0), "max_steps"),
        (lambda: DPOSettings(beta=0.0), "beta"),
        (lambda: DPOSettings(loss_type=["dpo"]), "loss_type"),
        (lambda: BaseModelSettings(hidden_size=130, num_heads=4), "hidden_size"),
        (lambda: BaseModelSettings(source="pretrained"), "name_or_path"),
        (lambda: SplitSettings(test_fraction=1.0), "test_fraction"),
        (lambda: NormalizeSettings(on_bad_record="skip"), "on_bad_record"),
    ],
)
def test_bad_settings_name_their_key(build, key):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        build()


def test_optional_lists_round_trip():
    import shlex

    parser = argparse.ArgumentParser()
    DPOSettings.add_arguments(parser)
    for weights in (None, [1.0, 0.5]):
        settings = DPOSettings(loss_type=["sigmoid", "sft"], loss_weights=weights)
        assert DPOSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict())))) == settings
    with pytest.raises(ConfigError, match="loss_weights: expected one weight per loss_type"):
        DPOSettings(loss_type=["sigmoid"], loss_weights=[1.0, 2.0])
