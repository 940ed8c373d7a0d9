# Helpers of rules/report.smk.


def expected_input(wildcards):
    """{"expected": file} when the run's config files name check.expected and it exists: its `spread` is this
    config's rerun noise floor, which the report weighs the win rate against. A config that leaves the key
    to its default makes no claim to be the run the default expected file was measured on.
    """
    if "check.expected" not in USER_KEYS:
        return {}
    path = Path(expected_file())  # rules/helpers/check.smk
    return {"expected": str(path)} if path.is_file() else {}
