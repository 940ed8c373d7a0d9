# Helpers of rules/check.smk.


def expected_file():
    """check.expected; a relative path is taken from the workflow's folder."""
    path = Path(config["check"]["expected"])
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)
