# Helpers of rules/ab.smk.


def ab_report_inputs():
    """The human A/B win rate for the report, once config ab.ratings names the filled sheet."""
    if config["ab"]["ratings"] is None:
        return {}
    return {"ab_result": rules.import_ab_ratings.output.win_rate}
