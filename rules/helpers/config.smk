# Helpers of rules/config.smk.


def resolved_config():
    """The resolved config with what the preset filled (the record_config rule's record)."""
    return json.dumps(
        {"config": config, "preset": PRESET, "user_keys": USER_KEYS}, sort_keys=True
    )
