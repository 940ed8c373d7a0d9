"""Before a device call spends minutes: can every package prefalign imports be imported here?

Scans src/prefalign for every `import X` / `from X import` (also those inside functions, such as
`import rensa` in the data stage's near-duplicate pass), leaves out the standard library and
prefalign, and imports each top-level name. Exit 1 with the missing ones, unless they are
optional (OPTIONAL: trackers, CPU-only extras). Seen on 2026-12-06: a lent H200 lacked rensa,
and six pipelines stopped at split_dataset after the call had started (bench/results/
gpu_session_h200_2026-12-06.json).

    python3 bench/gpu_preflight.py          # on the device, after bench/gpu_env.sh
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Imported only when a config asks for them (trackers), or never on a GPU machine.
OPTIONAL = {"wandb", "mlflow", "tensorboard"}
GPU_ONLY = {"unsloth", "unsloth_zoo"}  # required where there is a CUDA GPU


def imported_modules(root: Path) -> dict[str, set[str]]:
    """top-level module -> the files that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def main() -> int:
    found = imported_modules(REPO / "src" / "prefalign")
    third_party = sorted(m for m in found if m not in sys.stdlib_module_names and m not in ("prefalign", "__future__"))
    missing = []
    for module in third_party:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append((module, str(exc)))
        except Exception as exc:  # noqa: BLE001  (an import that raises otherwise, e.g. unsloth without a GPU)
            print(f"preflight: {module}: imports but raised {type(exc).__name__}: {exc}")
    optional = set(OPTIONAL)
    try:
        import torch

        if not torch.cuda.is_available():
            optional |= GPU_ONLY  # the CPU environment has no Unsloth, by design
    except ImportError:
        pass
    required = [(m, why) for m, why in missing if m not in optional]
    for module, why in missing:
        kind = "optional here" if module in optional else "MISSING"
        print(f"preflight: {kind} {module} ({why}); imported by {', '.join(sorted(found[module]))}")
    print(f"preflight: {len(third_party) - len(missing)} of {len(third_party)} packages import"
          + ("" if not required else f"; {len(required)} required ones missing: carry their wheels in .whl/"))
    return 1 if required else 0


if __name__ == "__main__":
    sys.exit(main())
