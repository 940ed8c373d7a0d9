# Helpers of rules/report.smk.


def report_weighs_spread():
    """Whether the report weighs the win rate against the bounds file's `spread` (this config's rerun
    noise floor): when the run's config files name check.expected and it exists. A config that leaves
    the key to its default makes no claim to be the run the default expected file was measured on.
    """
    return (
        "check.expected" in USER_KEYS and Path(expected_file()).is_file()
    )  # rules/helpers/check.smk


def expected_input(wildcards):
    """{"expected": the run's copy of check.expected} when the report weighs its spread, else {}."""
    return (
        {"expected": rules.stage_expected.output.expected}
        if report_weighs_spread()
        else {}
    )
