# Helpers of rules/check.smk (and of the export in rules/publish.smk).


def workflow_file(value):
    """A path from the config; a relative one is taken from the workflow's folder."""
    path = Path(value)
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)


def expected_file():
    """check.expected (relative to the workflow's folder)."""
    return workflow_file(config["check"]["expected"])


def digests_file():
    """check.digests (relative to the workflow's folder), or None when it is null."""
    return (
        workflow_file(config["check"]["digests"])
        if config["check"]["digests"]
        else None
    )


# The files `check` reads from outside the run, by the name of their copy under results/check/
# (by the stage_check_file job), since a step in a container sees the run's folder only.
CHECK_FILES = {"expected.yaml": expected_file()}
if digests_file():
    CHECK_FILES["digests.json"] = digests_file()


def staged_check_file(name):
    return f"results/check/{name}"


def digests_input():
    """{"digests": the run's copy of check.digests}, or {} when it is null."""
    return (
        {"digests": staged_check_file("digests.json")}
        if "digests.json" in CHECK_FILES
        else {}
    )


# The audit's verdict, once per invocation (export_model asks once per checkpoint).
AUDIT = {}


def audited(wildcards):
    """No inputs; `check` and `export` audit a finished run as its manifest records it: before any
    job runs, every file of the last run is hashed against results/manifest.json, and an edited,
    missing or stray artifact stops the workflow with the repair (prefalign.provenance.staleness,
    strict). The check step re-hashes the run once more (prefalign.provenance.published.audit),
    the export step the files it exports (prefalign.publish.export)."""
    settings = workflow.dag_settings
    if "problems" not in AUDIT:
        AUDIT["problems"] = previous_run_problems(
            MANIFEST_PLAN, settings.forcerun, settings.forceall, strict=True
        )
    if AUDIT["problems"]:
        raise WorkflowError(AUDIT["problems"])
    return {}


def audited_run(wildcards):
    """`audited`, plus the manifest as an input where the run must be made first (no manifest yet,
    or `all` named in the same call); else the finished run is checked as it stands and nothing
    of it is rebuilt (a check.expected of another config reruns nothing)."""
    audited(wildcards)
    manifest = MANIFEST_PLAN["manifest"]
    if not Path(manifest).exists() or "all" in workflow.dag_settings.targets:
        return {"manifest": manifest}
    return {}
